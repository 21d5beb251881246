"""Turn built variants into files the bench harness runs: ONNX (ours via ``dsp_deploy.export``, the
Torch-Pruning model via plain ``torch.onnx.export``), TorchScript for the torch backends where a
physically pruned torch module exists, and TensorRT engines where a GPU is present.
"""
from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsp_deploy.baselines.torch_pruning import export_plain_onnx
from dsp_deploy.checkpoint import build_model
from dsp_deploy.compare.onnx_cost import onnx_costs
from dsp_deploy.compare.variants import BuiltVariant
from dsp_deploy.engines import build_engine
from dsp_deploy.errors import DSPDeployError
from dsp_deploy.export import export_onnx
from dsp_deploy.utils.atomic import atomic_path
from dsp_deploy.utils.machine import cuda_gpus

log = logging.getLogger(__name__)

NO_TORCH_MODULE = ("no physically pruned torch module for this variant (dsp-deploy exports it to ONNX only); "
                   "its latency is measured on the ONNX and TensorRT backends")


@dataclass
class Artifacts:
    """Per variant name: its model file by kind ("onnx", "torchscript", "engine"), or why it has none."""

    files: dict[str, dict[str, Path]] = field(default_factory=dict)
    missing: dict[tuple[str, str], str] = field(default_factory=dict)  # (variant, kind) -> reason

    def add(self, variant: str, kind: str, path: Path) -> None:
        self.files.setdefault(variant, {})[kind] = path


def summarize_plan(plan: Any) -> tuple[str, dict[str, str]]:
    """("grouped+union x3 blocks, union16 x6 blocks", {conv: lowering label}) from an export LoweringPlan:
    the planner's per-block choices where it measured, else per-conv lowering counts."""
    labels = {name: choice.label() for name, choice in plan.layers.items()}
    if plan.chosen:
        counts = Counter(plan.chosen.values())
        return ", ".join(f"{c} x{n}" for c, n in counts.most_common()) + " (blocks)", labels
    counts = Counter(labels.values())
    return ", ".join(f"{c} x{n}" for c, n in counts.most_common()) + " (convs)", labels


def _record_onnx(built: BuiltVariant, path: Path, started: float) -> None:
    built.info.export_seconds = round(time.perf_counter() - started, 2)
    built.info.onnx = path.name
    built.info.onnx_flops, built.info.movement_ops = onnx_costs(path)


def export_ours(built: BuiltVariant, path: Path, lowering: str) -> None:
    """Export a dsp-deploy checkpoint with our exporter; record plan, parity, executed MACs and time."""
    started = time.perf_counter()
    mode = "dense" if built.info.method == "dense" else lowering
    result = export_onnx(built.checkpoint, path, lowering=mode, parity=True)
    if built.info.method != "dense":
        built.info.lowering, built.info.lowering_plan = summarize_plan(result.plan)
        built.info.lowering = f"{mode}: {built.info.lowering}"
    diff = result.max_diff
    built.info.parity_max_abs_diff = None if diff != diff else float(diff)  # NaN: parity not run
    _record_onnx(built, path, started)


def export_torch_pruning(built: BuiltVariant, path: Path, input_shape: tuple[int, ...]) -> None:
    started = time.perf_counter()
    assert built.module is not None
    export_plain_onnx(built.module, path, input_shape)
    _record_onnx(built, path, started)


def save_torchscript(module: Any, path: Path, input_shape: tuple[int, ...]) -> None:
    """Trace ``module`` (eval) to a TorchScript file the torch backends load."""
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.eval(), torch.zeros(1, *input_shape))
    with atomic_path(path) as tmp:
        traced.save(str(tmp))


def make_artifacts(built: Sequence[BuiltVariant], folder: Path, *, backends: Sequence[str], batches: Sequence[int],
                   lowering: str, input_shape: tuple[int, ...]) -> Artifacts:
    """Export every ok variant to ``folder`` and add what the requested backends need."""
    folder.mkdir(parents=True, exist_ok=True)
    out = Artifacts()
    for item in built:
        name = item.info.name
        if not item.info.ok:
            continue
        onnx_path = folder / f"{name}.onnx"
        log.info("exporting %s (%s)", name, item.info.label)
        if item.checkpoint is not None:
            export_ours(item, onnx_path, lowering)
        else:
            export_torch_pruning(item, onnx_path, input_shape)
        out.add(name, "onnx", onnx_path)
        if any(b in ("torch", "torch-cuda") for b in backends):
            module = item.module if item.module is not None else (
                build_model(item.checkpoint) if item.info.method == "dense" and item.checkpoint else None)
            if module is None:
                out.missing[(name, "torchscript")] = NO_TORCH_MODULE
            else:
                pts = folder / f"{name}.pts"
                save_torchscript(module, pts, input_shape)
                out.add(name, "torchscript", pts)
        if "trt" in backends:
            if not cuda_gpus():
                out.missing[(name, "engine")] = "no CUDA GPU visible; TensorRT engines need one"
                continue
            _build_engine(name, onnx_path, folder, batches, out)
    return out


def _build_engine(name: str, onnx_path: Path, folder: Path, batches: Sequence[int], out: Artifacts) -> None:
    ordered = sorted(batches)
    profile = (ordered[0], ordered[len(ordered) // 2], ordered[-1])
    engine = folder / f"{name}.engine"
    try:
        build_engine(onnx_path, engine, batch=profile, inspect=False)
    except DSPDeployError as exc:
        out.missing[(name, "engine")] = f"TensorRT build failed: {exc}"
        log.warning("TensorRT engine for %s not built: %s", name, exc)
        return
    out.add(name, "engine", engine)
