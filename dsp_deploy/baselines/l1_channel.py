"""L1-norm channel pruning (Li et al., 2017) as the G=1 case of the structure IR, at a FLOPs target.

Prunable *units* are whole channels:

* an inner conv's filter (conv1 of a basic block, conv1/conv2 of a bottleneck): the filter goes
  and the next conv of the block stops reading it;
* a residual-stream channel: it goes from every producer of the stream (stem or downsample conv
  and the last conv of every block adding into it) and from every reader (first convs of the
  blocks, the next downsample, the classifier), so the stream itself gets narrower.

A unit's importance is the L1 norm of its filter (the default ``criterion="l1"``, or any
`dsp_deploy.pruning.criteria` criterion's per-filter score; for a stream channel: the sum over the
stream's producers), divided by the mean over the layer's (stream's) channels so layers of any
size and scale compare. Units are removed least important first, each layer keeping at least
``min_keep`` of its channels; the number removed is found by the shared bisection
(`dsp_deploy.pruning.bisect_threshold`) so the whole-model MACs (``CostReport.flops``) land within
``tolerance`` of the target, with a small fix-up pass when one removal (a wide stream channel)
would jump across the tolerance window.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import TrainingError
from dsp_deploy.models.topology import ROLE_INNER, Topology
from dsp_deploy.pruning import Criterion, bisect_threshold, get_criterion
from dsp_deploy.structure import PRUNED, ModelStructure, count_costs, dense_structure, drop_dead_reads
from dsp_deploy.structure.validate import validate_structure

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.01
DEFAULT_MIN_KEEP = 0.1
_FIXUP_LIMIT = 400


@dataclass(frozen=True)
class PrunableChannel:
    """One prunable channel: ``kind`` is "filter" (of conv ``where``) or "stream" (stream ``where``)."""

    kind: str
    where: str
    index: int
    score: float


@dataclass(frozen=True)
class ChannelPruneResult:
    """The matched structure, its whole-model MACs and how far they are from the target."""

    structure: ModelStructure
    flops: int
    target_flops: int
    removed: int
    evaluations: int

    @property
    def error(self) -> float:
        """Relative MACs mismatch, (flops - target) / target."""
        return (self.flops - self.target_flops) / self.target_flops


def _normalized_units(kind: str, where: str, norms: list[float], min_keep: float,
                      normalize: bool = True) -> list[PrunableChannel]:
    """Units of one layer/stream, minus the ``min_keep`` most important channels (never pruned)."""
    mean = sum(norms) / len(norms) if norms else 0.0
    scores = [n / mean if mean > 0 else 0.0 for n in norms] if normalize else list(norms)
    keep = max(1, math.ceil(min_keep * len(norms)))
    order = sorted(range(len(norms)), key=lambda i: (-scores[i], i))
    protected = set(order[:keep])
    return [PrunableChannel(kind, where, i, scores[i]) for i in range(len(norms)) if i not in protected]


class ChannelPruner:
    """G=1 channel pruning to a FLOPs target from per-channel importance scores: orders every
    prunable channel (units) by score and builds the structure that removes the first ``n``.

    ``scores`` maps ("filter", conv) / ("stream", stream) to one score per channel; L1 norms here,
    Pruning-from-Scratch gates and Soft-Channel-Pruning keep-probabilities in `dsp_deploy.training`.
    ``normalize`` divides by the layer's mean (L1: layers of any scale compare); ``metric`` is what
    `match_flops` counts: "total" (whole-model MACs) or "dsp" (block-body convs)."""

    def __init__(self, topo: Topology, scores: Mapping[tuple[str, str], Sequence[float]], *,
                 min_keep: float = DEFAULT_MIN_KEEP, normalize: bool = True,
                 metadata: Mapping[str, object] | None = None, metric: str = "total") -> None:
        if not 0.0 < min_keep <= 1.0:
            raise TrainingError(f"min_keep must be in (0, 1], got {min_keep}")
        self.topo = topo
        self.metric = metric
        self.base = dense_structure(topo, metadata)
        units: list[PrunableChannel] = []
        for (kind, where), values in scores.items():
            units += _normalized_units(kind, where, [float(v) for v in values], min_keep, normalize)
        self.units: tuple[PrunableChannel, ...] = tuple(
            sorted(units, key=lambda u: (u.score, u.kind, u.where, u.index)))
        self.evaluations = 0
        self.channel_multiple = 1

    def align(self, multiple: int) -> None:
        """Keep every pruned layer's (stream's) channel count a multiple of ``multiple`` (a target's
        alignment, e.g. 8 on AVX2: counts off the SIMD width take slower kernels, often slower than
        dense). Latency-targeted pruning sets it; FLOPs targets stay unaligned, as in the papers."""
        if multiple < 1:
            raise TrainingError(f"channel multiple must be >= 1, got {multiple}")
        self.channel_multiple = int(multiple)

    def _width(self, kind: str, where: str) -> int:
        return self.topo.conv(where).out_channels if kind == "filter" else self.topo.stream(where).channels

    def _aligned(self, removed: Iterable[PrunableChannel]) -> list[PrunableChannel]:
        """Of each layer's (stream's) ``removed`` channels, least important first, only as many as
        leave a kept count rounded up to the channel multiple (alignment keeps channels, never drops
        more): the count removed still only grows with ``removed``, so the searches stay monotone."""
        places: dict[tuple[str, str], list[PrunableChannel]] = {}
        for unit in removed:
            places.setdefault((unit.kind, unit.where), []).append(unit)
        m, out = self.channel_multiple, []
        for (kind, where), units in places.items():
            total = self._width(kind, where)
            keep = min(total, -(-(total - len(units)) // m) * m)
            out += units[: total - keep]
        return out

    def dense_cost(self) -> int:
        """The dense model's cost in this pruner's metric."""
        return self._cost(count_costs(self.base, self.topo))

    def _cost(self, report: Any) -> int:
        return report.dsp_flops if self.metric == "dsp" else report.flops

    def match_reduction(self, reduction: float, *, tolerance: float = DEFAULT_TOLERANCE) -> ChannelPruneResult:
        """`match_flops` for a fractional FLOPs reduction (0.5 = half the dense cost)."""
        return self.match_flops(round(self.dense_cost() * (1.0 - reduction)), tolerance=tolerance)


    def structure_for(self, removed: Iterable[PrunableChannel]) -> ModelStructure:
        """The validated G=1 structure with ``removed`` channels gone (dead reads dropped; with a
        channel multiple, see `align`, fewer go)."""
        if self.channel_multiple > 1:
            removed = self._aligned(removed)
        pruned: dict[str, set[int]] = {}
        for unit in removed:
            convs = [unit.where] if unit.kind == "filter" else list(self.topo.stream(unit.where).producers)
            for conv in convs:
                pruned.setdefault(conv, set()).add(unit.index)
        updates = {}
        for name, filters in pruned.items():
            layer = self.base.layer(name)
            groups = [PRUNED if f in filters else g for f, g in enumerate(layer.filter_groups)]
            updates[name] = layer.replace(filter_groups=groups, groups=1)
        structure = drop_dead_reads(self.base.with_layers(updates), self.topo)
        validate_structure(structure, self.topo)
        return structure

    def flops_for(self, removed: Iterable[PrunableChannel]) -> tuple[int, ModelStructure]:
        structure = self.structure_for(removed)
        self.evaluations += 1
        return self._cost(count_costs(structure, self.topo)), structure

    def _smallest_prefix(self, cost: Callable[[Sequence[PrunableChannel]], Any], target: float,
                         cache: dict[int, Any]) -> int:
        """Smallest n with cost(first n units) <= target (costs only fall as n grows): the shared
        bisection over the number of removed units, memoised in ``cache``."""
        def evaluate(n: float) -> Any:
            if int(n) not in cache:
                cache[int(n)] = cost(self.units[:int(n)])
            return cache[int(n)]

        return int(bisect_threshold(evaluate, lambda r: r[0] <= target, 0, len(self.units), integer=True)[0])

    def match_cost(self, cost: Callable[[ModelStructure], float], budget: float, *, what: str = "latency",
                   unit: str = "ms") -> tuple[float, ModelStructure]:
        """The structure removing the fewest channels whose ``cost`` (e.g. predicted latency) is
        within ``budget``: the shared search with another cost than FLOPs. Returns (cost, structure)."""
        def evaluate(removed: Sequence[PrunableChannel]) -> tuple[float, ModelStructure]:
            structure = self.structure_for(removed)
            self.evaluations += 1
            return cost(structure), structure

        floor = evaluate(self.units)
        if floor[0] > budget:
            raise TrainingError(f"a {what} of {budget:.4g} {unit} is out of reach for channel pruning: removing every "
                                f"prunable channel reaches {floor[0]:.4g} {unit}")
        cache: dict[int, Any] = {len(self.units): floor}
        n = self._smallest_prefix(evaluate, budget, cache)
        value, structure = cache[n] if n in cache else evaluate(self.units[:n])
        log.info("channel pruning: %d channels removed, %s %.4g %s (budget %.4g)", n, what, value, unit, budget)
        return value, structure

    def match_flops(self, target_flops: int, *, tolerance: float = DEFAULT_TOLERANCE) -> ChannelPruneResult:
        """The structure whose whole-model MACs are within ``tolerance`` (relative) of ``target_flops``."""
        dense = self.dense_cost()
        if not 0 < target_flops <= dense:
            raise TrainingError(f"target of {target_flops} MACs is outside (0, {dense}] (the dense model)")
        low, high = target_flops * (1 - tolerance), target_flops * (1 + tolerance)
        floor, floor_structure = self.flops_for(self.units)
        if floor > high:
            raise TrainingError(
                f"channel pruning cannot reach {target_flops / 1e6:.2f} MMACs: removing every prunable channel "
                f"(keeping {len(self.units)} units' layers at their minimum) leaves {floor / 1e6:.2f} MMACs")
        cache: dict[int, tuple[int, ModelStructure]] = {len(self.units): (floor, floor_structure)}
        lo = self._smallest_prefix(self.flops_for, target_flops, cache)
        best_n = min((n for n in (lo - 1, lo) if n >= 0), key=lambda n: abs(self._cached(cache, n)[0] - target_flops))
        flops, structure = self._cached(cache, best_n)
        removed = list(self.units[:best_n])
        if not low <= flops <= high:
            flops, structure, removed = self._fix_up(lo - 1, low, high, cache)
        log.info("channel pruning (%s): %d channels removed, %.4g MACs vs target %.4g (%+.2f%%, %d evaluations)",
                 self.metric, len(removed), flops, target_flops, 100 * (flops - target_flops) / target_flops,
                 self.evaluations)
        return ChannelPruneResult(structure, flops, target_flops, len(removed), self.evaluations)

    def _cached(self, cache: dict[int, tuple[int, ModelStructure]], n: int) -> tuple[int, ModelStructure]:
        if n not in cache:
            cache[n] = self.flops_for(self.units[:n])
        return cache[n]

    def _fix_up(self, start: int, low: float, high: float,
                cache: dict[int, tuple[int, ModelStructure]]) -> tuple[int, ModelStructure, list[PrunableChannel]]:
        """From the last prefix above the window, add later units one by one, skipping any whose
        removal would undershoot, until the MACs fall inside [low, high]."""
        removed = list(self.units[:max(start, 0)])
        flops, structure = self._cached(cache, max(start, 0))
        for unit in self.units[max(start, 0):][:_FIXUP_LIMIT]:
            trial_flops, trial = self.flops_for([*removed, unit])
            if trial_flops < low:
                continue
            removed.append(unit)
            flops, structure = trial_flops, trial
            if flops <= high:
                return flops, structure, removed
        raise TrainingError(f"channel pruning could not land within the FLOPs window [{low:.4g}, {high:.4g}] MACs "
                            f"(closest: {flops:.4g})")


class L1ChannelPruner(ChannelPruner):
    """Orders every prunable channel of a dense model by normalised L1 importance (or another
    ``criterion``'s per-filter score) and builds the G=1 structure that removes the first ``n``."""

    def __init__(self, topo: Topology, state_dict: Mapping[str, "torch.Tensor"], *,
                 min_keep: float = DEFAULT_MIN_KEEP, prune_streams: bool = True,
                 metadata: Mapping[str, object] | None = None, metric: str = "total",
                 criterion: str | Criterion = "l1") -> None:
        rate = get_criterion(criterion)

        def filters(conv: str) -> list[float]:
            return rate.filters(_weight(state_dict, conv)).tolist()

        scores: dict[tuple[str, str], list[float]] = {}
        for spec in topo.convs:
            if spec.role == ROLE_INNER:
                scores[("filter", spec.name)] = filters(spec.name)
        if prune_streams:
            for stream in topo.streams:
                per_producer = [filters(p) for p in stream.producers]
                scores[("stream", stream.name)] = [sum(col) for col in zip(*per_producer)]
        super().__init__(topo, scores, min_keep=min_keep, normalize=True, metadata=metadata, metric=metric)


def _weight(state_dict: Mapping[str, "torch.Tensor"], conv: str) -> "torch.Tensor":
    try:
        return state_dict[f"{conv}.weight"]
    except KeyError:
        raise TrainingError("the dense state_dict has no weight for this conv", layer=conv) from None


def l1_channel_prune(topo: Topology, state_dict: Mapping[str, "torch.Tensor"], target_flops: int, *,
                     tolerance: float = DEFAULT_TOLERANCE, min_keep: float = DEFAULT_MIN_KEEP,
                     prune_streams: bool = True, criterion: str | Criterion = "l1") -> ChannelPruneResult:
    """G=1 L1-norm (or ``criterion``) channel pruning of a dense model to ``target_flops`` whole-model MACs."""
    pruner = L1ChannelPruner(topo, state_dict, min_keep=min_keep, prune_streams=prune_streams, criterion=criterion,
                             metadata={"method": "l1-channel", "target_flops": int(target_flops)})
    return pruner.match_flops(int(target_flops), tolerance=tolerance)
