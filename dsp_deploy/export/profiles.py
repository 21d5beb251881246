"""Export profiles: JSON presets for the export options, shipped as package data in
``dsp_deploy/profiles/`` (found by name after any install) or given as a path."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.export.plan import BACKENDS, MODES
from dsp_deploy.utils.jsonfile import read_json_object, shipped_json

PROFILE_PACKAGE = "dsp_deploy.profiles"
KEYS = {"lowering": str, "fp16": bool, "opset": int, "plan_batches": list, "backend": str, "description": str,
        "channel_multiple": int}


def list_profiles() -> list[str]:
    return sorted(shipped_json(PROFILE_PACKAGE))


def load_profile(name_or_path: str) -> dict[str, Any]:
    """The options of a profile (a shipped one by name, or a file by path), validated."""
    path = Path(name_or_path)
    if not path.is_file():
        path = shipped_json(PROFILE_PACKAGE).get(name_or_path, path)
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
