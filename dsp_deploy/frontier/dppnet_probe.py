"""DPPNet in the accuracy-latency run: can it reach a latency budget at all on this target?

DPPNet (each 3x3 filter keeps the taps of learned patterns) exports through its own lowering
(export/passes/lower_dpp.py), which on ONNX Runtime CPU costs more per MAC than a dense convolution
(bench/results/dppnet_speed.md). Training it at three budgets is not affordable here, so the run first
measures the bound: DPPNet's fastest structure, every DPP conv keeping only its centre tap (the fewest
taps a pattern can keep), exported and timed beside the run's dense model at the run's batches (random
weights: latency does not depend on their values). A latency budget that structure misses is out of
reach for every DPPNet the method could learn, and its row says so with the measured figure; a budget it
reaches (and every FLOPs budget) stays untrained, saying why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dsp_deploy.compare.latency_match import DEFAULT_TOLERANCE
from dsp_deploy.frontier.runner import cached_result, fingerprint, fmt_ms, row_base
from dsp_deploy.frontier.settings import SKIPPED, RunSettings

METHOD = "dppnet"
PROBE_TAPS = 1
"""Taps per DPP conv of the probed structure: the centre alone, DPPNet's sparsest pattern."""


def probe_row(run: Any) -> dict[str, Any]:
    """The measured bound of ``run`` (a `ModelSeedRun`), cached beside its models: latency per batch of
    DPPNet's fastest structure and of the run's dense model, timed interleaved."""

    def produce() -> dict[str, Any]:
        import torch

        from dsp_deploy.compare.onnx_cost import onnx_macs
        from dsp_deploy.export import export_onnx
        from dsp_deploy.models import create
        from dsp_deploy.models.dpp import set_random_patterns

        folder = run.base / METHOD
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(run.seed)
        model = create(f"dppnet-{run.model}")
        set_random_patterns(model, taps=PROBE_TAPS, seed=run.seed)
        path = folder / f"fastest-{PROBE_TAPS}tap.onnx"
        export_onnx(model.eval(), path, model_name=f"dppnet-{run.model}")
        latency, dense = run.measurer.time_files(path)
        row = row_base(run.model, METHOD, run.seed, "probe", None)
        row.update(taps=PROBE_TAPS, latency_ms=fmt_ms(latency), dense_ms=fmt_ms(dense),
                   speedup={str(b): round(dense[b] / latency[b], 4) for b in latency},
                   mac_reduction_pct=round(100 * (1 - onnx_macs(path) / onnx_macs(run.measurer.dense_onnx)), 2),
                   machine=fingerprint())
        return row

    return cached_result(Path(run.base) / METHOD / "probe.json", produce)[0]


def dppnet_rows(probe: dict[str, Any], settings: RunSettings) -> list[dict[str, Any]]:
    """DPPNet's skipped rows of one model and seed, each latency row with what the probe measured."""
    batch = str(settings.match_batch)
    reached = float(probe["speedup"][batch])
    bound = (f"its fastest structure (every DPP conv keeping {probe['taps']} of 9 taps, "
             f"{probe['mac_reduction_pct']:.0f}% fewer MACs) measured {reached:.2f}x of dense at batch {batch}, "
             "timed beside this run's dense model")
    rows = []
    for kind in ("latency", "flops"):
        for speedup in settings.speedups:
            row = row_base(probe["model"], METHOD, probe["seed"], kind, speedup)
            if kind == "latency" and speedup / reached - 1 > DEFAULT_TOLERANCE:  # as a latency match judges it
                reason = f"out of reach on this target: {bound}"
            elif kind == "latency":
                reason = f"{SKIPPED[METHOD]} ({bound}: this budget is reachable)"
            else:
                reason = SKIPPED[METHOD]
            row.update(status="skipped", reason=reason, bound_speedup=reached)
            rows.append(row)
    return rows
