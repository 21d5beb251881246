"""Group channel pruning to a FLOPs target (DSP).

Given each prunable conv's filter -> group assignment (learned or one-shot):

* importance of (group g, input channel c) = sum over g's filters of ||W[f, c]||^2 (the default
  ``criterion="l2sq"``; any `dsp_deploy.pruning.criteria` criterion's per-connection score), normalised
  over the channels of g; the channels of g are sorted by it and a channel is pruned when the
  cumulative importance up to and including it stays below one global threshold beta;
* the last conv of each residual block also loses filters: filter importance ||W[f]||^2,
  normalised over the layer, cumulative below the same beta;
* dead channels go (filters nobody reads, reads of channels nobody writes, groups without
  filters read nothing), then the FLOPs reduction is measured on the structure IR.

beta is found by the shared bisection (`dsp_deploy.pruning.bisect_threshold`) so that the
reduction lands on the target (or the cost, e.g. predicted latency, fits a budget).

Hardware-aligned pruning (``channel_multiple=N``, CLI ``--channel-multiple N``, default off):
inside the bisection (a) each group's kept-input count and (b) each group's kept-filter count of
a block's last conv are rounded to the nearest multiple of N (at least N, at most all), keeping
the most important ones; (c) after dead-channel removal each group of an inner conv gets a live
filter count rounded to the nearest multiple of N, by reviving the dead filters of the group that
the next conv rates highest (the next conv's group rating a filter highest reads it) or pruning
the live ones it rates lowest (no longer read), and each group's read count is rounded the same
way with its most / least important channels. Groups stay the learned/clustered ones (a
group of at most N filters keeps its unrounded count); the threshold search still has to land
on the FLOPs target (coarse N on a small model can leave a target between two steps: an error).
With N = 16 the exported grouped convs have per-group widths that ONNX Runtime's NCHWc kernels
take without padding.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from dsp_deploy.errors import TrainingError
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, Topology
from dsp_deploy.pruning import Criterion, bisect_threshold, get_criterion
from dsp_deploy.structure import PRUNED, ConvStructure, ModelStructure, count_costs, dense_structure, drop_dead_reads
from dsp_deploy.structure.validate import live_channels, validate_structure
from dsp_deploy.training.alignment import align_filters, align_reads, top_aligned
from dsp_deploy.training.regularizer import prunable_convs

log = logging.getLogger(__name__)

TOLERANCE_PCT = 0.5


@dataclass(frozen=True)
class PruneResult:
    structure: ModelStructure
    beta: float
    reduction_pct: float
    target_pct: float
    metric: str
    evaluations: int


def _cumulative(importance: torch.Tensor) -> torch.Tensor:
    """Per row: each entry's inclusive cumulative share when the row is sorted ascending.
    The largest entry of a row gets exactly 1 (so it always survives a threshold <= 1)."""
    total = importance.sum(dim=-1, keepdim=True)
    share = importance / total.clamp_min(1e-30)
    values, order = share.sort(dim=-1)
    cum = torch.empty_like(share).scatter_(-1, order, values.cumsum(dim=-1))
    top = share.argmax(dim=-1, keepdim=True)
    return cum.scatter_(-1, top, torch.ones_like(top, dtype=cum.dtype))


class _LayerPlan:
    """Pre-computed importances of one conv: what to keep at any threshold."""

    def __init__(self, name: str, weight: torch.Tensor, assignment: torch.Tensor, groups: int, prune_filters: bool,
                 criterion: Criterion):
        scores = criterion.connections(weight)  # [F, C]
        self.name = name
        self.groups = groups
        self.assignment = assignment.long()
        group_imp = torch.zeros(groups, scores.shape[1], dtype=scores.dtype).index_add_(0, self.assignment, scores)
        self.channel_cum = _cumulative(group_imp)  # [G, C]
        self.filter_cum = _cumulative(criterion.filters(weight)) if prune_filters else None  # [F]

    def layer(self, base: ConvStructure, beta: float, multiple: int | None = None) -> ConvStructure:
        filters = self.assignment.clone()
        if self.filter_cum is not None:
            drop = self.filter_cum < beta
            if multiple:
                for g in range(self.groups):
                    members = torch.nonzero(self.assignment == g).flatten()
                    keep_f = top_aligned(self.filter_cum[members], int((~drop[members]).sum()), multiple)
                    drop[members] = True
                    drop[members[keep_f]] = False
            filters[drop] = PRUNED
        keep = self.channel_cum >= beta
        if multiple:
            keep = torch.stack([
                torch.zeros_like(keep[g]).index_fill_(0, top_aligned(self.channel_cum[g], int(keep[g].sum()), multiple),
                                                      True)
                for g in range(self.groups)])
        has_filters = torch.zeros(self.groups, dtype=torch.bool)
        has_filters[filters[filters >= 0]] = True
        inputs = [torch.nonzero(keep[g]).flatten().tolist() if has_filters[g] else [] for g in range(self.groups)]
        return base.replace(filter_groups=filters.tolist(), group_inputs=inputs, groups=self.groups)


def _clear_filterless_groups(structure: ModelStructure) -> ModelStructure:
    updates = {}
    for layer in structure.layers:
        inputs = [chans if layer.group_filters(g) else () for g, chans in enumerate(layer.group_inputs)]
        if inputs != list(layer.group_inputs):
            updates[layer.name] = layer.replace(group_inputs=inputs, groups=layer.groups)
    return structure.with_layers(updates) if updates else structure


class GroupChannelPruner:
    """Builds the pruned structure for any threshold beta and searches beta for a FLOPs target.
    ``criterion``: the weight-importance criterion (name or `Criterion`; default ``l2sq``)."""

    def __init__(self, topo: Topology, state_dict: Mapping[str, torch.Tensor],
                 assignments: Mapping[str, torch.Tensor], groups: int, metadata: Mapping[str, object] | None = None,
                 *, channel_multiple: int | None = None,
                 finalize: Callable[[ModelStructure], ModelStructure] | None = None,
                 criterion: str | Criterion = "l2sq"):
        rate = get_criterion(criterion)
        if channel_multiple is not None and channel_multiple < 1:
            raise TrainingError(f"channel_multiple must be a positive integer, got {channel_multiple}")
        self.topo = topo
        self.groups = groups
        self.channel_multiple = channel_multiple if channel_multiple and channel_multiple > 1 else None
        self.base = dense_structure(topo, metadata)
        self.finalize = finalize  # e.g. the latency budget's one-group fallback
        self.plans = []
        for spec in prunable_convs(topo):
            if spec.name not in assignments:
                raise TrainingError("no filter -> group assignment for this conv", layer=spec.name)
            assignment = torch.as_tensor(assignments[spec.name]).long()
            if assignment.shape != (spec.out_channels,) or int(assignment.min()) < 0 or int(assignment.max()) >= groups:
                raise TrainingError(f"assignment must give each of the {spec.out_channels} filters a group in "
                                    f"0..{groups - 1}", layer=spec.name)
            weight = state_dict[f"{spec.name}.weight"]
            self.plans.append(_LayerPlan(spec.name, weight, assignment, groups, spec.role == ROLE_BLOCK_OUT, rate))

    def structure(self, beta: float) -> ModelStructure:
        """The validated pruned structure at threshold ``beta`` (0 = nothing pruned)."""
        updates = {p.name: p.layer(self.base.layer(p.name), beta, self.channel_multiple) for p in self.plans}
        structure = drop_dead_reads(self.base.with_layers(updates), self.topo)
        if self.channel_multiple:
            structure = self._align(structure, self.channel_multiple)
        structure = _clear_filterless_groups(structure)
        if self.finalize is not None:
            structure = self.finalize(structure)
        validate_structure(structure, self.topo)
        return structure

    def _align(self, structure: ModelStructure, multiple: int) -> ModelStructure:
        """Step (c) of hardware-aligned pruning, in topological order: a conv's producer's per-group
        live filter counts are rounded first (which changes what the conv reads), then the conv's
        per-group read counts. Only adds reads of live channels, adds filters it then reads, and
        prunes filters it stops reading: the structure stays valid."""
        plans = {p.name: p for p in self.plans}
        for spec in self.topo.convs:
            plan = plans.get(spec.name)
            if plan is None:
                continue
            layer = structure.layer(spec.name)
            inputs = [set(chans) for chans in layer.group_inputs]
            readers = [h for h in range(layer.groups) if layer.group_filters(h)]
            if not readers:
                continue
            producer = plans.get(spec.reads)
            if producer is not None:
                structure = align_filters(structure, producer, plan, inputs, readers, multiple)
            live = live_channels(structure, self.topo, spec.reads)
            fed_by_conv = not (spec.reads == "input" or spec.reads.startswith("stream:"))
            for h in readers:
                align_reads(plan.channel_cum[h], inputs, h, readers, live, multiple, fed_by_conv)
            layer = structure.layer(spec.name)
            updated = [tuple(sorted(chans)) for chans in inputs]
            if updated != list(layer.group_inputs):
                structure = structure.with_layers({spec.name: layer.replace(group_inputs=updated,
                                                                            groups=layer.groups)})
        return structure

    def reduction(self, beta: float, metric: str) -> tuple[float, ModelStructure]:
        structure = self.structure(beta)
        return count_costs(structure, self.topo).reduction_pct(metric), structure

    def search(self, target: float, metric: str, *, iterations: int = 40, tolerance_pct: float = TOLERANCE_PCT,
               progress: bool = False) -> PruneResult:
        """Bisection on beta so the ``metric`` FLOPs reduction (percent) hits ``100 * target``."""
        goal = 100.0 * target
        top, top_structure = self.reduction(1.0, metric)
        if top < goal - tolerance_pct:
            raise TrainingError(f"a {goal:.1f}% FLOPs reduction ({metric} convention) is out of reach: "
                                f"pruning everything prunable gives {top:.1f}%")
        best = (abs(top - goal), 1.0, top, top_structure)
        evaluations = 1
        bar = _progress(iterations, progress)

        def probe(beta: float, result: tuple[float, ModelStructure]) -> None:
            nonlocal best, evaluations
            value = result[0]
            evaluations += 1
            bar.update(1)
            bar.set_postfix_str(f"beta={beta:.5f} reduction={value:.2f}%")
            if abs(value - goal) < best[0]:
                best = (abs(value - goal), beta, value, result[1])

        bisect_threshold(lambda beta: self.reduction(beta, metric), lambda r: r[0] >= goal, 0.0, 1.0,
                         iterations=iterations, stop=lambda r: abs(r[0] - goal) < 0.02, on_probe=probe)
        bar.close()
        error, beta, value, structure = best
        if error > tolerance_pct:
            raise TrainingError(f"could not land within {tolerance_pct} points of {goal:.1f}% "
                                f"({metric} convention): the closest threshold gives {value:.2f}%")
        log.info("pruning threshold beta=%.6f gives a %.2f%% FLOPs reduction (%s convention, target %.1f%%)",
                 beta, value, metric, goal)
        return PruneResult(structure, beta, value, goal, metric, evaluations)

    def search_cost(self, cost: Callable[[ModelStructure], float], budget: float, *, what: str = "latency",
                    unit: str = "ms", iterations: int = 30,
                    progress: bool = False) -> tuple[float, float, ModelStructure]:
        """Bisection on beta for the lowest threshold (most importance kept) whose structure's
        ``cost`` (e.g. predicted latency) is within ``budget``; returns (beta, cost, structure).
        TrainingError when even pruning everything prunable stays above the budget."""
        floor = cost(self.structure(1.0))
        if floor > budget:
            raise TrainingError(f"a {what} of {budget:.4g} {unit} is out of reach: the smallest allowed "
                                f"structure (everything prunable pruned) reaches {floor:.4g} {unit}")
        bar = _progress(iterations, progress)

        def evaluate(beta: float) -> tuple[float, ModelStructure]:
            candidate = self.structure(beta)
            return cost(candidate), candidate

        def probe(beta: float, result: tuple[float, ModelStructure]) -> None:
            bar.update(1)
            bar.set_postfix_str(f"beta={beta:.5f} {what}={result[0]:.4g}")

        beta, found = bisect_threshold(evaluate, lambda r: r[0] <= budget, 0.0, 1.0, iterations=iterations,
                                       resolution=1e-6, on_probe=probe)
        bar.close()
        value, structure = found if found is not None else (floor, self.structure(1.0))
        best = (beta, value, structure)
        log.info("pruning threshold beta=%.6f gives a %s of %.4g %s (budget %.4g)", best[0], what, best[1], unit,
                 budget)
        return best


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="threshold search", disable=not enabled, leave=False)


def assignments_from_logits(logits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hard assignment (arg-max over groups) of learned group logits [G, F]."""
    return {name: torch.as_tensor(value).argmax(dim=0) for name, value in logits.items()}
