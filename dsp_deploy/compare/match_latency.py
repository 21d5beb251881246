"""`compare --match latency`: prune every baseline to the DSP variant's *measured* latency (within 5%)
instead of its FLOPs, with ``latency_match``'s search; the report then shows each baseline's FLOPs at
that latency.

Per DSP variant: the dense and DSP models are exported and timed side by side (speedup S at the match
batch); each baseline is rebuilt by its own builder at the FLOPs ratio the search proposes until its
measured speedup is within tolerance of S. Baselines with a fixed structure (a trained ``pfs=CKPT``,
DPPNet's discrete patterns) stay FLOPs-matched, said in their notes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dsp_deploy.compare.config import CompareConfig, split_baseline
from dsp_deploy.compare.latency_match import (
    DEFAULT_TOLERANCE,
    LatencyTarget,
    OnnxMeasurer,
    export_checkpoint,
    match_ratio,
)
from dsp_deploy.compare.variants import BuiltVariant
from dsp_deploy.runtime.timing import MEASURE_SECONDS

log = logging.getLogger(__name__)


def _exporter(config: CompareConfig, input_shape: tuple[int, ...]) -> Any:
    def export(built: BuiltVariant, path: Path) -> None:
        if built.checkpoint is not None:
            export_checkpoint(built.checkpoint, path, lowering=config.lowering)
        else:
            from dsp_deploy.baselines.torch_pruning import export_plain_onnx

            assert built.module is not None
            export_plain_onnx(built.module, path, input_shape)

    return export


def _builder(
    key: str,
    path: str | None,
    name: str,
    dense: Any,
    dsp: Any,
    topo: Any,
    input_shape: tuple[int, ...],
    config: CompareConfig,
) -> Any:
    """``ratio -> BuiltVariant`` for baseline ``key``, or None when its structure cannot be re-pruned."""
    from dsp_deploy.compare import variants as v

    if (key in ("pfs", "scp") and path is not None) or key == "dppnet":
        return None

    def build(ratio: float) -> BuiltVariant:
        target = replace(dsp, flops=int(dsp.dense_flops * (1.0 - ratio)), flops_reduction_pct=100.0 * ratio)
        if key in ("l1", "l1-inner"):
            built = v._l1_variant(name, key == "l1", dense, target, topo, config.tolerance)
        elif key == "tp":
            built = v._tp_variant(name, dense, target, input_shape, config.tolerance)
        else:
            built = v._method_variant(name, key, None, dense, target, topo, config)
        built.info.matched_to = dsp.name
        built.info.flops_match_pct = 100.0 * (built.info.flops - dsp.flops) / dsp.flops
        return built

    return build


def rematch_latency(config: CompareConfig, built: Sequence[BuiltVariant], folder: Path) -> list[BuiltVariant]:
    """``built`` with every re-prunable baseline replaced by its latency-matched twin."""
    from dsp_deploy.structure.validate import topology_for

    dense = built[0]
    assert dense.checkpoint is not None
    topo = topology_for(dense.checkpoint.structure)
    input_shape = (topo.in_channels, *topo.input_size)
    batch = config.match_batch or max(config.batches)
    folder.mkdir(parents=True, exist_ok=True)
    dense_onnx = folder / "dense.onnx"
    export_checkpoint(dense.checkpoint, dense_onnx)
    threads = config.threads[0] if config.threads else 1
    measurer = OnnxMeasurer(
        dense_onnx,
        folder,
        (batch,),
        threads=threads,
        runs=config.runs or 20,
        warmup=min(config.warmup, 3),
        exporter=_exporter(config, input_shape),
        min_seconds=0.0 if config.quick else MEASURE_SECONDS,  # quick: a smoke run, its matches are rough
    )
    keys = {split_baseline(item)[0]: split_baseline(item)[1] for item in config.baselines}
    out = list(built)
    for dsp in [b for b in built if b.info.method == "dsp" and b.info.ok]:
        suffix = dsp.info.name[len("dsp") :]
        own = measurer.measure(dsp, 0.0, dsp.info.flops, dsp.info.params)
        speedup = own.speedup(batch)
        dsp.info.notes = (
            dsp.info.notes + "; " if dsp.info.notes else ""
        ) + f"measured {speedup:.3f}x dense at batch {batch}: the latency the baselines are matched to"
        target = LatencyTarget(speedup=speedup, batch=batch, tolerance=DEFAULT_TOLERANCE)
        for i, item in enumerate(out):
            info = item.info
            if info.matched_to != dsp.info.name or not info.ok:
                continue
            key = info.name[: len(info.name) - len(suffix)] if suffix else info.name
            build = _builder(key, keys.get(key), info.name, dense.checkpoint, dsp.info, topo, input_shape, config)
            if build is None:
                info.matched_by = "flops"
                info.notes = (
                    info.notes + "; " if info.notes else ""
                ) + "fixed structure: FLOPs-matched, not latency-matched"
                continue
            made: dict[float, BuiltVariant] = {}

            def measure(ratio: float, build: Any = build, made: dict = made) -> Any:
                candidate = build(ratio)
                made[ratio] = candidate
                return measurer.measure(candidate, ratio, candidate.info.flops, candidate.info.params)

            start = info.flops_reduction_pct / 100.0
            result = match_ratio(measure, target, start=start, max_steps=config.match_steps)
            chosen = made[result.best.ratio]
            chosen.info.matched_by = "latency"
            chosen.info.latency_match_pct = round(100 * result.best.error(target), 2)
            chosen.info.notes = (chosen.info.notes + "; " if chosen.info.notes else "") + (
                f"latency-matched to {dsp.info.name} at batch {batch}: {result.best.speedup(batch):.3f}x dense vs "
                f"{speedup:.3f}x, {len(result.steps)} measurements" + ("" if result.converged else f"; {result.reason}")
            )
            out[i] = chosen
    return out


def latency_match_lines(variants: Sequence[Any]) -> list[str]:
    """The report section: each baseline's FLOPs at the DSP model's measured latency."""
    rows = [v for v in variants if getattr(v, "matched_by", "flops") == "latency" or v.method == "dsp"]
    if not rows:
        return []
    lines = [
        "",
        "## FLOPs at matched latency",
        "",
        "Baselines were pruned to the DSP variant's measured latency (speedup vs dense at the match batch, "
        f"within {100 * DEFAULT_TOLERANCE:g}%) instead of its FLOPs. *Latency vs DSP* is the measured error "
        "of the chosen structure during matching; the tables above re-time everything.",
        "",
        "| variant | matched to | MMACs | FLOPs -% | MACs vs DSP | latency vs DSP | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in rows:
        if v.method == "dsp":
            lines.append(f"| {v.name} | - | {v.flops / 1e6:.1f} | {v.flops_reduction_pct:.1f} | - | - | {v.notes} |")
            continue
        err = "-" if v.latency_match_pct is None else f"{v.latency_match_pct:+.1f}%"
        vs = "-" if v.flops_match_pct is None else f"{v.flops_match_pct:+.1f}%"
        lines.append(
            f"| {v.name} | {v.matched_to} | {v.flops / 1e6:.1f} | {v.flops_reduction_pct:.1f} | {vs} | {err} | "
            f"{v.notes} |"
        )
    return lines
