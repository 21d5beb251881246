"""Pruning to a latency budget: the goal (``--latency-target MS`` or ``--speedup X`` over the dense
model on the same target), the one-group fallback where the latency table says a layer's groups
cost more than they save, the whole-stream rule of a target whose export reads and writes the
residual stream whole, and the record a latency-targeted result carries."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.hardware.latency import WHOLE_STREAM_BACKENDS, LatencyTable
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, Topology
from dsp_deploy.structure.ir import PRUNED, ConvStructure, ModelStructure
from dsp_deploy.structure.validate import live_channels


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


def live_groups(layer: ConvStructure) -> int:
    """How many of ``layer``'s groups own a filter (a pruned group computes nothing)."""
    return sum(1 for g in range(layer.groups) if layer.group_filters(g))


def one_group(layer: ConvStructure) -> ConvStructure:
    """``layer`` as one group: every kept filter reads the union of what its groups read."""
    union = layer.read_channels
    filters = [PRUNED if g == PRUNED else 0 for g in layer.filter_groups]
    return layer.replace(filter_groups=filters, group_inputs=[union], groups=1)


def fallback_to_one_group(
    table: LatencyTable, topo: Topology, ms_per_mac: float | None = None, *, whole_stream: bool = False
) -> Callable[[ModelStructure], ModelStructure]:
    """A structure hook: each conv whose one-group (union) lowering the table predicts no slower
    than its grouped one becomes one group (more weights kept, no more latency).

    ``whole_stream``: both lowerings priced as the whole-stream rule leaves them (`LatencyTable.conv_options`).
    ``ms_per_mac`` (a FLOPs target, see `LatencyTable.conv_ms_per_mac`): the extra MACs a layer keeps
    as one group are pruned elsewhere, saving that much each, so the lowerings compare net of their
    MACs: one group where ``union - grouped <= ms_per_mac * (union MACs - grouped MACs)``. On ONNX
    Runtime CPU that turns block outputs whose stream write costs more than their extra MACs into one
    group."""

    def apply(structure: ModelStructure) -> ModelStructure:
        updates = {}
        for spec in topo.convs:
            layer = structure.layer(spec.name)
            options = table.conv_options(spec, layer, whole_stream=whole_stream)
            if "grouped" not in options:
                continue
            union, grouped = options["union"], options["grouped"]
            if ms_per_mac:
                macs = table.option_macs(spec, layer, whole_stream=whole_stream)
                union, grouped = union - ms_per_mac * macs["union"], grouped - ms_per_mac * macs["grouped"]
            if union <= grouped:
                updates[spec.name] = one_group(layer)
        return structure.with_layers(updates) if updates else structure

    return apply


def whole_stream_when_one_group(topo: Topology) -> Callable[[ModelStructure], ModelStructure]:
    """A structure hook for `WHOLE_STREAM_BACKENDS`: a one-group conv (one live group) that reads the
    residual stream reads all of its live channels, and a one-group block-output conv keeps every filter.
    Pruned there, those weights would run as zeros (see `WHOLE_STREAM_BACKENDS`); kept, the FLOPs count
    says what runs, and a FLOPs target is met by pruning what the export saves. Grouped convs are left
    as they are (their lowering gathers each group's channels anyway)."""

    def apply(structure: ModelStructure) -> ModelStructure:
        updates = {}
        for spec in topo.convs:
            layer = structure.layer(spec.name)
            if layer.is_dense or live_groups(layer) != 1:
                continue
            layer = one_group(layer)  # a single live group (the others emptied by the pruning) is one group
            reads = layer.group_inputs[0]
            if spec.reads.startswith("stream:"):
                reads = tuple(sorted(live_channels(structure, topo, spec.reads)))
            filters = [0] * layer.out_channels if spec.role == ROLE_BLOCK_OUT else layer.filter_groups
            whole = layer.replace(filter_groups=filters, group_inputs=[reads], groups=1)
            if whole != structure.layer(spec.name):
                updates[spec.name] = whole
        return structure.with_layers(updates) if updates else structure

    return apply


def target_shape(
    table: LatencyTable, topo: Topology, backend: str, ms_per_mac: float | None = None
) -> Callable[[ModelStructure], ModelStructure]:
    """The shape rules of a structure pruned for a target: the one-group fallback (`fallback_to_one_group`;
    ``ms_per_mac`` for a FLOPs target), then, on a backend of `WHOLE_STREAM_BACKENDS`, the whole-stream
    rule (`whole_stream_when_one_group`)."""
    if backend not in WHOLE_STREAM_BACKENDS:
        return fallback_to_one_group(table, topo, ms_per_mac)
    fallback = fallback_to_one_group(table, topo, ms_per_mac, whole_stream=True)
    whole = whole_stream_when_one_group(topo)
    return lambda structure: whole(fallback(structure))


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
