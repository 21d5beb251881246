"""ONNX export of group-pruned models: lowering passes, a measured lowering planner, exporter.

Importing this package is cheap; onnx, onnxruntime and torch are imported inside functions.

    from dsp_deploy.export import export_onnx
    result = export_onnx("resnet56_g2.dsp.pt", "model.onnx", lowering="auto")
    result.plan.table(), result.parity_max_diff
"""
from __future__ import annotations

from typing import Any

from dsp_deploy.export.plan import LOWERINGS, MODES, LayerChoice, LoweringPlan

__all__ = ["LOWERINGS", "MODES", "ExportResult", "LayerChoice", "LoweringPlan", "export_onnx", "export_torch",
           "load_lowered", "load_plan", "lower_checkpoint", "plan_path_for"]


def __getattr__(name: str) -> Any:
    if name in ("ExportResult", "export_onnx", "load_plan", "lower_checkpoint", "plan_path_for"):
        from dsp_deploy.export import exporter

        return getattr(exporter, name)
    if name in ("export_torch", "load_lowered"):
        from dsp_deploy.export import torch_module

        return getattr(torch_module, name)
    raise AttributeError(name)
