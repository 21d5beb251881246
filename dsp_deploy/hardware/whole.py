"""Whole structures on the target: export them with the exporter and time them side by side with
the benchmark harness (which sits above this package: imported inside the functions). Used to
calibrate a latency table and to measure what a latency-targeted pruning gives."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dsp_deploy.runtime.ort import OrtRunner
from dsp_deploy.runtime.timing import time_runners
from dsp_deploy.structure.ir import ModelStructure
from dsp_deploy.targets import Target

log = logging.getLogger(__name__)


def random_weights(model: str, seed: int = 0, num_classes: int | None = None, in_channels: int = 3) -> dict[str, Any]:
    """A random-init state_dict of ``model`` for ``in_channels``-channel images (latency does not depend
    on the weights)."""
    import torch

    from dsp_deploy.models import create

    torch.manual_seed(seed)
    return create(model, num_classes, in_channels=in_channels).state_dict()


def export_structures(
    structures: Mapping[str, ModelStructure],
    folder: str | Path,
    *,
    lowering: str = "auto",
    state_dict: Mapping[str, Any] | None = None,
    cache_path: str | None = None,
    plan_batches: Sequence[int] | None = None,
    plan_runs: int = 15,
) -> dict[str, Path]:
    """Export each named structure (with ``state_dict`` or random weights) to ``folder/<name>.onnx``."""
    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.export import export_onnx

    paths = {}
    for name, structure in structures.items():
        weights = (
            dict(state_dict)
            if state_dict is not None
            else random_weights(structure.model, num_classes=structure.num_classes, in_channels=structure.in_channels)
        )
        mode = "dense" if all(layer.is_dense for layer in structure.layers) else lowering
        path = Path(folder) / f"{name}.onnx"
        export_onnx(
            Checkpoint(structure.model, weights, structure),
            path,
            lowering=mode,
            parity=False,
            cache_path=cache_path,
            plan_batches=plan_batches,
            runs=plan_runs,
        )
        paths[name] = path
    return paths


def time_files_stats(
    paths: Mapping[str, Path], target: Target, *, runs: int = 20, warmup: int = 3, min_seconds: float = 0.0
) -> dict[str, dict[str, float]]:
    """{"median": ms, "min": ms} of each ONNX file on ``target``, interleaved, by the runtime's one
    timing loop (ONNX Runtime CPU runners with the target's threads and batch; at least ``runs``
    rounds and ``min_seconds``)."""
    runners = {name: OrtRunner(Path(path), threads=target.threads, name=name) for name, path in paths.items()}
    timed = time_runners(runners, (target.batch,), runs=runs, warmup=warmup, min_seconds=min_seconds)
    return {name: {"median": per[target.batch].median_ms, "min": per[target.batch].min_ms}
            for name, per in timed.items()}


def time_files(
    paths: Mapping[str, Path], target: Target, *, runs: int = 20, warmup: int = 3, stat: str = "median"
) -> dict[str, float]:
    """``stat`` ms ("median" or "min") of each ONNX file on ``target`` (see `time_files_stats`)."""
    return {k: v[stat] for k, v in time_files_stats(paths, target, runs=runs, warmup=warmup).items()}


def measure_structures(
    structures: Mapping[str, ModelStructure],
    target: Target,
    *,
    lowering: str = "auto",
    runs: int = 20,
    state_dict: Mapping[str, Any] | None = None,
    cache_path: str | None = None,
    plan_runs: int = 15,
    stat: str = "median",
    plan_batches: Sequence[int] | None = None,
    min_seconds: float = 0.0,
) -> Any:
    """Export and time ``structures`` side by side (at least ``runs`` rounds and ``min_seconds``):
    name -> ``stat`` ms ("median" or "min"), or name -> {"median", "min"} with ``stat="both"``.
    Exports are planned at ``plan_batches`` (default: the target's batch)."""
    with tempfile.TemporaryDirectory(prefix="dsp-latency-") as tmp:
        paths = export_structures(
            structures,
            tmp,
            lowering=lowering,
            state_dict=state_dict,
            cache_path=cache_path,
            plan_batches=tuple(plan_batches or (target.batch,)),
            plan_runs=plan_runs,
        )
        stats = time_files_stats(paths, target, runs=runs, min_seconds=min_seconds)
    return stats if stat == "both" else {k: v[stat] for k, v in stats.items()}
