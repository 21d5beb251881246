"""Pruning to a latency budget on a target (``--latency-target MS`` / ``--speedup X``) for DSP group
channel pruning and the channel-pruning methods: the target and its latency table, the budget
search through each pruner's cost seam, and the predicted / measured record of the result."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.hardware.budget import LatencyGoal, fallback_to_one_group, latency_record
from dsp_deploy.structure.ir import ModelStructure
from dsp_deploy.targets import MEASURABLE_BACKENDS, Target, channel_multiple, make_target

log = logging.getLogger(__name__)


@dataclass
class LatencyOptions:
    """The latency goal and the target it is measured on (CLI: --backend/--threads/--batch)."""

    goal: LatencyGoal
    backend: str = "ort-cpu"
    threads: int = 1
    batch: int = 1
    channel_multiple: int | None = None  # overrides the target's alignment
    table: str | None = None             # latency table file (default: the per-target cache)
    measure: bool = True                 # export and time the result beside dense
    runs: int = 15

    def target(self) -> Target:
        target = make_target(self.backend, threads=self.threads, batch=self.batch, multiple=self.channel_multiple)
        if target.backend not in MEASURABLE_BACKENDS:
            raise UsageError(f"latency tables can be measured for {', '.join(MEASURABLE_BACKENDS)} only today, "
                             f"not backend '{target.backend}'")
        return target


@dataclass
class Budgeted:
    """A latency-targeted structure and its record."""

    structure: ModelStructure
    record: dict[str, Any]
    multiple: int


def sample_structure(model: str, groups: int, beta: float, *, seed: int = 0, multiple: int | None = None,
                     state_dict: Mapping[str, Any] | None = None, topo: Any = None) -> ModelStructure:
    """A DSP structure of ``model``: random balanced filter groups, the pruner's global threshold
    ``beta`` on (random-init unless given) weights, aligned to ``multiple``."""
    import torch

    from dsp_deploy.hardware.whole import random_weights
    from dsp_deploy.models import topology
    from dsp_deploy.training.pruning import GroupChannelPruner
    from dsp_deploy.training.regularizer import prunable_convs

    topo = topo or topology(model)
    state = state_dict if state_dict is not None else random_weights(model, seed, topo.num_classes, topo.in_channels)
    gen = torch.Generator().manual_seed(seed)
    assignments = {s.name: torch.randperm(s.out_channels, generator=gen) % groups for s in prunable_convs(topo)}
    pruner = GroupChannelPruner(topo, state, assignments, groups, channel_multiple=multiple)
    return pruner.structure(beta)


def calibrate_whole_model(groups: int, *, lowering: str = "auto", runs: int = 20, beta: float = 0.4,
                          topo: Any = None):
    """A calibrator for `build_table`: times the dense model and one pruned structure whole and
    fits the table's scale and offset to them. The pruned one is shaped like a latency-targeted
    result (target alignment, the one-group fallback by the not yet calibrated table: only relative
    costs matter there), so the offset captures how much of the parts' saving the export delivers."""
    from dsp_deploy.hardware.latency import STAT, LatencyTable, fit_calibration
    from dsp_deploy.hardware.whole import measure_structures
    from dsp_deploy.models import topology
    from dsp_deploy.structure import dense_structure

    def calibrate(table: LatencyTable, target: Target) -> None:
        shape = topo or topology(table.model)
        pruned = fallback_to_one_group(table, shape)(
            sample_structure(table.model, groups, beta, multiple=channel_multiple(target), topo=shape))
        structures = {"dense": dense_structure(shape), "pruned": pruned}
        measured = measure_structures(structures, target, lowering=lowering, runs=runs, stat=STAT)
        fit_calibration(table, [(structures[k], measured[k]) for k in structures])
        table.notes = dict(table.notes or {}, calibration={k: round(v, 4) for k, v in measured.items()},
                           calibration_lowering=lowering)
        log.info("latency table %s calibrated: scale %.3f offset %.3f ms (%s)", table.model, table.scale,
                 table.offset, measured)
    return calibrate


def _table(opts: LatencyOptions, target: Target, topo: Any, groups: int) -> Any:
    from dsp_deploy.hardware.latency import load_or_build

    return load_or_build(topo.model, target, [groups], path=opts.table, runs=opts.runs,
                         calibrate=calibrate_whole_model(groups, topo=topo), topo=topo)


def _finish(opts: LatencyOptions, target: Target, table: Any, topo: Any, structure: ModelStructure, dense_ms: float,
            budget: float, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    from dsp_deploy.structure import count_costs, dense_structure

    predicted = table.predict(structure, topo)
    measured = None
    if opts.measure:
        from dsp_deploy.hardware.whole import measure_structures

        measured = measure_structures({"dense": dense_structure(topo), "pruned": structure}, target,
                                      state_dict=state_dict, runs=max(opts.runs, 20), stat="both")
    record = latency_record(target.to_dict(), opts.goal, budget, dense_ms, predicted, measured,
                            count_costs(structure, topo).flops_reduction_pct)
    record["flops"] = count_costs(structure, topo).flops
    log.info("latency-targeted pruning: %s", record)
    return record


def dsp_to_budget(opts: LatencyOptions, topo: Any, state_dict: Mapping[str, Any], assignments: Mapping[str, Any],
                  groups: int, metadata: dict[str, Any], *, progress: bool = False,
                  criterion: str = "l2sq") -> Budgeted:
    """DSP group channel pruning with the highest threshold-kept importance (``criterion``) whose
    predicted latency fits the goal: group sizes in the target's channel multiple, one group where
    groups don't pay."""
    from dsp_deploy.structure import dense_structure
    from dsp_deploy.training.pruning import GroupChannelPruner

    target = opts.target()
    multiple = channel_multiple(target)
    table = _table(opts, target, topo, groups)
    pruner = GroupChannelPruner(topo, state_dict, assignments, groups, metadata,
                                channel_multiple=multiple, finalize=fallback_to_one_group(table, topo),
                                criterion=criterion)
    dense_ms = table.predict(dense_structure(topo), topo)
    budget = opts.goal.budget_ms(dense_ms)
    beta, _, structure = pruner.search_cost(lambda s: table.predict(s, topo), budget, progress=progress)
    record = _finish(opts, target, table, topo, structure, dense_ms, budget, state_dict)
    record["beta"] = beta
    return Budgeted(structure, record, multiple)


def channels_to_budget(opts: LatencyOptions, pruner: Any, state_dict: Mapping[str, Any]) -> Budgeted:
    """A channel pruner (`baselines.ChannelPruner`: L1, PFS, SCP) searched to the latency goal."""
    from dsp_deploy.structure import dense_structure

    target = opts.target()
    topo = pruner.topo
    table = _table(opts, target, topo, 1)
    dense_ms = table.predict(dense_structure(topo), topo)
    budget = opts.goal.budget_ms(dense_ms)
    _, structure = pruner.match_cost(lambda s: table.predict(s, topo), budget)
    return Budgeted(structure, _finish(opts, target, table, topo, structure, dense_ms, budget, state_dict),
                    channel_multiple(target))
