"""What the lowering plan beside an ONNX file says about its target, for the engine manifest.

``dsp-deploy export`` writes ``model.onnx.plan.json`` with the backend the lowering was chosen
for, whether it was measured, and on which machine. An engine built from an ONNX whose plan was
made for another backend (the default: ONNX Runtime CPU, which often keeps blocks dense) still
builds, but the build warns once and says how to plan for TensorRT.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from dsp_deploy.errors import DSPDeployError
from dsp_deploy.export import load_plan, plan_path_for

TENSORRT_BACKEND = "tensorrt"  # dsp_deploy.export.plan.TENSORRT (kept here so this module stays light)
PLAN_FOR_TENSORRT = "dsp-deploy build CHECKPOINT --out MODEL.engine"


def plan_record(onnx_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest's ``lowering_plan`` entry from ``<onnx>.plan.json``; None when there is none.

    An unreadable plan file gives a record with ``error`` instead of failing the build."""
    path = plan_path_for(onnx_path)
    if not path.is_file():
        return None
    try:
        plan = load_plan(path)
    except DSPDeployError as exc:
        return {"file": path.name, "error": str(exc)}
    record: dict[str, Any] = {
        "file": path.name,
        "backend": plan.backend,
        "mode": plan.mode,
        "measured": plan.measured,
        "machine": plan.machine,
        "chosen": dict(sorted(Counter(plan.chosen.values()).items())),  # candidate -> number of blocks
    }
    if plan.notes.get("not_measured"):
        record["note"] = plan.notes["not_measured"]
    return record


def foreign_plan_warning(record: dict[str, Any] | None, onnx_path: str | os.PathLike[str], flavour: str) -> str | None:
    """One line when the ONNX's lowering was planned (``auto``) for a backend other than TensorRT."""
    if not record or record.get("mode") != "auto" or record.get("backend") in (None, TENSORRT_BACKEND):
        return None
    return (f"{Path(onnx_path).name} was lowered by a plan made for {record['backend']} ({record['file']}), "
            f"not for {TENSORRT_BACKEND} (building with {flavour}); `{PLAN_FOR_TENSORRT}` plans for TensorRT")


def describe(record: dict[str, Any] | None) -> str:
    """Short text for the CLI summary: backend and whether the lowering was measured."""
    if not record:
        return "no lowering plan beside the ONNX"
    if "error" in record:
        return f"lowering plan unreadable ({record['file']})"
    if record["mode"] != "auto":
        return f"lowering forced to {record['mode']} (not measured)"
    if record["measured"]:
        return f"lowering planned for {record['backend']}, measured"
    return f"lowering planned for {record['backend']}; {record.get('note', 'not measured')}"
