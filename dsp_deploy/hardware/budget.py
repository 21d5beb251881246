"""Pruning to a latency budget: the goal (``--latency-target MS`` or ``--speedup X`` over the dense
model on the same target), the one-group fallback where the latency table says a layer's groups
cost more than they save, and the record a latency-targeted result carries."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.hardware.latency import LatencyTable
from dsp_deploy.models.topology import Topology
from dsp_deploy.structure.ir import PRUNED, ConvStructure, ModelStructure


@dataclass(frozen=True)
class LatencyGoal:
    """Exactly one of an absolute latency (ms) and a speedup over dense on the same target."""

    latency_ms: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if (self.latency_ms is None) == (self.speedup is None):
            raise UsageError("give one latency goal: --latency-target MS or --speedup X")
        value, flag = (
            (self.latency_ms, "--latency-target") if self.latency_ms is not None else (self.speedup, "--speedup")
        )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UsageError(f"{flag} must be a positive number, got {value!r}")
        if self.speedup is not None and self.speedup < 1:
            raise UsageError(f"--speedup must be >= 1 (a pruned model is not slower than dense), got {self.speedup}")

    def budget_ms(self, dense_ms: float) -> float:
        """The latency budget given the dense model's predicted latency."""
        return float(self.latency_ms) if self.latency_ms is not None else dense_ms / float(self.speedup)

    def describe(self) -> str:
        return f"{self.latency_ms:g} ms" if self.latency_ms is not None else f"{self.speedup:g}x dense"


def check_goal(flops_reduction: float | None, latency_ms: float | None, speedup: float | None) -> LatencyGoal | None:
    """The latency goal of a command (None for a FLOPs target); UsageError unless exactly one target."""
    given = [
        f
        for f, v in (("--flops-reduction", flops_reduction), ("--latency-target", latency_ms), ("--speedup", speedup))
        if v is not None
    ]
    if len(given) > 1:
        raise UsageError(f"give one pruning target, not {' and '.join(given)}")
    if latency_ms is None and speedup is None:
        return None
    return LatencyGoal(latency_ms, speedup)


def one_group(layer: ConvStructure) -> ConvStructure:
    """``layer`` as one group: every kept filter reads the union of what its groups read."""
    union = layer.read_channels
    filters = [PRUNED if g == PRUNED else 0 for g in layer.filter_groups]
    return layer.replace(filter_groups=filters, group_inputs=[union], groups=1)


def fallback_to_one_group(table: LatencyTable, topo: Topology) -> Callable[[ModelStructure], ModelStructure]:
    """A structure hook: each conv whose one-group (union) lowering the table predicts no slower
    than its grouped one becomes one group (more weights kept, no more latency)."""

    def apply(structure: ModelStructure) -> ModelStructure:
        updates = {}
        for spec in topo.convs:
            layer = structure.layer(spec.name)
            options = table.conv_options(spec, layer)
            if "grouped" in options and options["union"] <= options["grouped"]:
                updates[spec.name] = one_group(layer)
        return structure.with_layers(updates) if updates else structure

    return apply


def latency_record(
    target: dict[str, Any],
    goal: LatencyGoal,
    budget_ms: float,
    dense_ms: float,
    predicted_ms: float,
    measured: dict[str, dict[str, float]] | None,
    flops_reduction_pct: float,
) -> dict[str, Any]:
    """What a latency-targeted result records (checkpoint metadata and the prune summary);
    ``measured``: {"dense"|"pruned": {"median": ms, "min": ms}} timed side by side."""
    record = {
        "target": target,
        "goal": goal.describe(),
        "budget_ms": round(budget_ms, 4),
        "predicted_dense_ms": round(dense_ms, 4),
        "predicted_ms": round(predicted_ms, 4),
        "predicted_speedup": round(dense_ms / predicted_ms, 4) if predicted_ms > 0 else None,
        "flops_reduction_pct": round(flops_reduction_pct, 4),
    }
    if measured:
        dense, pruned = measured["dense"], measured["pruned"]
        record.update(
            measured_ms=round(pruned["median"], 4),
            measured_dense_ms=round(dense["median"], 4),
            measured_speedup=round(dense["median"] / pruned["median"], 4),
            measured_min_ms=round(pruned["min"], 4),
            measured_dense_min_ms=round(dense["min"], 4),
            measured_speedup_min=round(dense["min"] / pruned["min"], 4),
        )
    return record
