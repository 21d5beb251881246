"""Group channel pruning to a FLOPs target (DSP).

Given each prunable conv's filter -> group assignment (learned or one-shot):

* importance of (group g, input channel c) = sum over g's filters of ||W[f, c]||^2, normalised
  over the channels of g; the channels of g are sorted by it and a channel is pruned when the
  cumulative importance up to and including it stays below one global threshold beta;
* the last conv of each residual block also loses filters: filter importance ||W[f]||^2,
  normalised over the layer, cumulative below the same beta;
* dead channels go (filters nobody reads, reads of channels nobody writes, groups without
  filters read nothing), then the FLOPs reduction is measured on the structure IR.

beta is found by bisection so that the reduction lands on the target.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from dsp_deploy.errors import TrainingError
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, Topology
from dsp_deploy.structure import PRUNED, ConvStructure, ModelStructure, count_costs, dense_structure, drop_dead_reads
from dsp_deploy.structure.validate import validate_structure
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

    def __init__(self, name: str, weight: torch.Tensor, assignment: torch.Tensor, groups: int, prune_filters: bool):
        sq = weight.detach().double().pow(2).sum(dim=(2, 3))  # [F, C]
        self.name = name
        self.groups = groups
        self.assignment = assignment.long()
        group_imp = torch.zeros(groups, sq.shape[1], dtype=sq.dtype).index_add_(0, self.assignment, sq)
        self.channel_cum = _cumulative(group_imp)  # [G, C]
        self.filter_cum = _cumulative(sq.sum(dim=1)) if prune_filters else None  # [F]

    def layer(self, base: ConvStructure, beta: float) -> ConvStructure:
        filters = self.assignment.clone()
        if self.filter_cum is not None:
            filters[self.filter_cum < beta] = PRUNED
        keep = self.channel_cum >= beta
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
    """Builds the pruned structure for any threshold beta and searches beta for a FLOPs target."""

    def __init__(self, topo: Topology, state_dict: Mapping[str, torch.Tensor],
                 assignments: Mapping[str, torch.Tensor], groups: int, metadata: Mapping[str, object] | None = None):
        self.topo = topo
        self.groups = groups
        self.base = dense_structure(topo, metadata)
        self.plans = []
        for spec in prunable_convs(topo):
            if spec.name not in assignments:
                raise TrainingError("no filter -> group assignment for this conv", layer=spec.name)
            assignment = torch.as_tensor(assignments[spec.name]).long()
            if assignment.shape != (spec.out_channels,) or int(assignment.min()) < 0 or int(assignment.max()) >= groups:
                raise TrainingError(f"assignment must give each of the {spec.out_channels} filters a group in "
                                    f"0..{groups - 1}", layer=spec.name)
            weight = state_dict[f"{spec.name}.weight"]
            self.plans.append(_LayerPlan(spec.name, weight, assignment, groups, spec.role == ROLE_BLOCK_OUT))

    def structure(self, beta: float) -> ModelStructure:
        """The validated pruned structure at threshold ``beta`` (0 = nothing pruned)."""
        updates = {p.name: p.layer(self.base.layer(p.name), beta) for p in self.plans}
        structure = drop_dead_reads(self.base.with_layers(updates), self.topo)
        structure = _clear_filterless_groups(structure)
        validate_structure(structure, self.topo)
        return structure

    def reduction(self, beta: float, metric: str) -> tuple[float, ModelStructure]:
        structure = self.structure(beta)
        return count_costs(structure, self.topo).reduction_pct(metric), structure

    def search(self, target: float, metric: str, *, iterations: int = 40, tolerance_pct: float = TOLERANCE_PCT,
               progress: bool = False) -> PruneResult:
        """Bisection on beta so the ``metric`` FLOPs reduction (percent) hits ``100 * target``."""
        goal = 100.0 * target
        lo, hi = 0.0, 1.0
        top, top_structure = self.reduction(hi, metric)
        if top < goal - tolerance_pct:
            raise TrainingError(f"a {goal:.1f}% FLOPs reduction ({metric} convention) is out of reach: "
                                f"pruning everything prunable gives {top:.1f}%")
        best = (abs(top - goal), hi, top, top_structure)
        evaluations = 1
        bar = _progress(iterations, progress)
        for _ in range(iterations):
            beta = (lo + hi) / 2
            value, structure = self.reduction(beta, metric)
            evaluations += 1
            bar.update(1)
            bar.set_postfix_str(f"beta={beta:.5f} reduction={value:.2f}%")
            if abs(value - goal) < best[0]:
                best = (abs(value - goal), beta, value, structure)
            if abs(value - goal) < 0.02:
                break
            if value < goal:
                lo = beta
            else:
                hi = beta
        bar.close()
        error, beta, value, structure = best
        if error > tolerance_pct:
            raise TrainingError(f"could not land within {tolerance_pct} points of {goal:.1f}% "
                                f"({metric} convention): the closest threshold gives {value:.2f}%")
        log.info("pruning threshold beta=%.6f gives a %.2f%% FLOPs reduction (%s convention, target %.1f%%)",
                 beta, value, metric, goal)
        return PruneResult(structure, beta, value, goal, metric, evaluations)


def _progress(total: int, enabled: bool):  # noqa: ANN202 - tqdm type
    from tqdm import tqdm

    return tqdm(total=total, desc="threshold search", disable=not enabled, leave=False)


def assignments_from_logits(logits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hard assignment (arg-max over groups) of learned group logits [G, F]."""
    return {name: torch.as_tensor(value).argmax(dim=0) for name, value in logits.items()}
