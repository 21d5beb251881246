"""DSP group channel pruning to a FLOPs target, shaped for the machine it will run on (``prune
--flops-reduction R --hardware-aware``): the same global-threshold search as the paper's pruning, with
the shape rules of a latency-targeted result (`hardware.budget.target_shape`): group sizes in the
target's channel multiple (relaxed down `ladder.alignment_ladder` where the target cannot be
reached at the coarser one), one group where the latency table says a layer's groups cost more than
they save (net of the MACs: what a one-group conv keeps beyond its groups is pruned elsewhere to hold
the FLOPs target, `LatencyTable.conv_ms_per_mac`), and, on ONNX Runtime CPU, a one-group conv's
residual-stream reads and block outputs kept whole (pruned, they would run as zeros). The FLOPs target
is then met by pruning what the export saves; the record carries the target and the table's predicted
speedup."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dsp_deploy.targets import Target, channel_multiple

log = logging.getLogger(__name__)

SHAPED_TOLERANCE_PCT = 1.5
"""How close (percentage points) a shaped structure lands on the FLOPs target. The shape rules move the
count in steps as the threshold moves (a conv falling back to one group reads the union of its groups'
channels, a one-group conv reading the stream reads all of it): on ResNet-20 a step is up to ~1.2
points, where the paper's pruning lands within `pruning.TOLERANCE_PCT`."""


@dataclass(frozen=True)
class HardwareTarget:
    """The target a FLOPs-targeted structure is shaped for (CLI: --backend/--target-threads/--target-batch,
    --channel-multiple, --latency-table)."""

    backend: str = "ort-cpu"
    threads: int = 1
    batch: int = 1
    channel_multiple: int | None = None  # overrides the target's alignment (then the only one tried)
    table: str | None = None             # latency table file (default: the per-target cache)
    runs: int = 15                       # timed runs per table entry when the table must be measured

    def target(self) -> Target:
        from dsp_deploy.training.latency_prune import measurable_target

        return measurable_target(self.backend, self.threads, self.batch, self.channel_multiple)


@dataclass(frozen=True)
class ShapedResult:
    """The shaped structure, its threshold and FLOPs reduction, and what the record says of the target."""

    result: Any  # pruning.PruneResult
    multiple: int
    record: dict[str, Any]


def dsp_to_flops_on_target(hw: HardwareTarget, topo: Any, state_dict: Mapping[str, Any],
                           assignments: Mapping[str, Any], groups: int, metadata: dict[str, Any],
                           reduction: float, metric: str, *, criterion: str = "l2sq",
                           progress: bool = False) -> ShapedResult:
    """The threshold search to ``reduction`` (a fraction, ``metric`` convention) under the target's
    shape rules, at the coarsest alignment of the ladder that reaches it. TrainingError (naming the
    multiples tried) when none does."""
    from dsp_deploy.hardware.budget import live_groups, target_shape
    from dsp_deploy.structure import dense_structure
    from dsp_deploy.training.ladder import LadderTrials, alignment_ladder
    from dsp_deploy.training.latency_prune import target_table
    from dsp_deploy.training.pruning import GroupChannelPruner

    target = hw.target()
    table = target_table(hw, target, topo, groups)
    shape = target_shape(table, topo, target.backend, table.conv_ms_per_mac(topo))
    trials = LadderTrials()
    for multiple in alignment_ladder(channel_multiple(target), hw.channel_multiple is not None):
        pruner = GroupChannelPruner(topo, state_dict, assignments, groups,
                                    dict(metadata, channel_multiple=multiple, shaped_for=target.to_dict()),
                                    channel_multiple=multiple, finalize=shape, criterion=criterion)
        result = trials.attempt(multiple, lambda _: pruner.search(reduction, metric, tolerance_pct=SHAPED_TOLERANCE_PCT,
                                                                  progress=progress))
        if result is None:
            continue
        trials.reached(multiple, f"{result.reduction_pct:.2f}% fewer FLOPs")
        dense_ms = table.predict(dense_structure(topo), topo)
        predicted = table.predict(result.structure, topo)
        live = [live_groups(layer) for layer in result.structure.layers if not layer.is_dense]
        record = {"target": target.to_dict(), "channel_multiple": multiple,
                  "grouped_layers": sum(1 for n in live if n > 1), "one_group_layers": sum(1 for n in live if n == 1),
                  "predicted_dense_ms": round(dense_ms, 4), "predicted_ms": round(predicted, 4),
                  "predicted_speedup": round(dense_ms / predicted, 4) if predicted > 0 else None}
        if trials.relaxed:
            record["alignment_tried"] = trials.tried
        log.info("hardware-aware pruning for %s: %s", target.describe(), record)
        return ShapedResult(result, multiple, record)
    raise trials.refusal(f"under the shape rules of {target.describe()}")
