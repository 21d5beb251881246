"""Export profiles: JSON presets (the repository's ``export/`` folder) for the export options."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.export.plan import BACKENDS, MODES
from dsp_deploy.utils.jsonfile import read_json_object

PROFILE_DIR = Path(__file__).resolve().parents[2] / "export"
KEYS = {"lowering": str, "fp16": bool, "opset": int, "plan_batches": list, "backend": str, "description": str,
        "channel_multiple": int}


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json")) if PROFILE_DIR.is_dir() else []


def load_profile(name_or_path: str) -> dict[str, Any]:
    """The options of a profile (by name in ``export/`` or by path), validated."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise UsageError(f"unknown export profile '{name_or_path}' (available: {', '.join(list_profiles()) or 'none'})")
    data = read_json_object(path, UsageError, "export profile")
    for key, value in data.items():
        if key not in KEYS or not isinstance(value, KEYS[key]):
            raise UsageError(f"export profile {os.fspath(path)}: bad entry '{key}' (allowed: {', '.join(KEYS)})")
    if data.get("lowering", "auto") not in MODES:
        raise UsageError(f"export profile {os.fspath(path)}: unknown lowering '{data['lowering']}'")
    if data.get("backend", BACKENDS[0]) not in BACKENDS:
        raise UsageError(f"export profile {os.fspath(path)}: unknown backend '{data['backend']}' "
                         f"(choose from: {', '.join(BACKENDS)})")
    data.pop("description", None)
    return data
