"""Pruning to a latency budget on a target (``--latency-target MS`` / ``--speedup X``) for DSP group
channel pruning and the channel-pruning methods: the target and its latency table, the budget
search through each pruner's cost seam, and the predicted / measured record of the result."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.hardware.budget import LatencyGoal, fallback_to_one_group, latency_record, target_shape
from dsp_deploy.runtime.timing import MEASURE_SECONDS, check_stat
from dsp_deploy.structure.ir import ModelStructure
from dsp_deploy.targets import MEASURABLE_BACKENDS, Target, channel_multiple, make_target
from dsp_deploy.training.ladder import LadderTrials, alignment_ladder
from dsp_deploy.utils.ratio_bracket import RatioBracket

log = logging.getLogger(__name__)


CORRECTIONS = 3
"""Measured tries after the first, by default, while a result misses its goal: one to find the other side of
the goal when the first lands on a step of the exporter's staircase (ResNet-20 G=4: 1.57x and 1.58x at 79%
and 77% fewer FLOPs, 1.13x at 66%), one to bracket it, one to refine."""


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
    min_seconds: float = MEASURE_SECONDS  # each measured try times dense and the result for at least this long
    stat: str = "median"                 # what a measured try is judged by: "median" or "min" (runtime.timing.STATS)
    plan_cache: str | None = None        # the exporter's block timings (share a later export's to get its lowering)
    plan_runs: int = 15                  # the exporter's timed runs per block candidate
    plan_batches: tuple[int, ...] | None = None  # batches the exports are planned at (None: the target's)
    corrections: int = CORRECTIONS       # further measured tries when the result misses the goal (with measure)
    tolerance: float = 0.05              # relative miss of the measured latency that triggers a correction

    def target(self) -> Target:
        target = measurable_target(self.backend, self.threads, self.batch, self.channel_multiple)
        check_stat(self.stat, "--latency-stat")
        return target


def measurable_target(backend: str, threads: int, batch: int, multiple: int | None) -> Target:
    """A validated target whose latency table can be measured here (UsageError naming the bad value)."""
    target = make_target(backend, threads=threads, batch=batch, multiple=multiple)
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


CALIBRATION_BETAS = (0.1, 0.3, 0.5)
"""Pruning thresholds of the calibration samples: light to deep, the range pruning targets use (deeper
random-weight samples make the exporter fall back to dense in places and no longer follow the parts)."""


CALIBRATION_CHANNEL_REDUCTIONS = (0.3, 0.5, 0.7)
"""FLOPs reductions of the channel-pruned calibration samples of a G=1 table (light to deep, as the betas)."""


def calibration_family(groups: int) -> str | None:
    """The family of structures a table for ``groups`` predicts, when not DSP's: "channels" for G=1 (the
    channel pruners' tables), whose exports realise more of their parts' saving than DSP's (no Gathers,
    narrowed streams), so one calibration cannot serve both."""
    return "channels" if groups == 1 else None


def calibration_structures(model: str, groups: int, multiple: int, topo: Any,
                           finalize: Callable[[ModelStructure], ModelStructure],
                           betas: tuple[float, ...] = CALIBRATION_BETAS) -> dict[str, ModelStructure]:
    """Dense and pruned structures of random weights, shaped like a latency-targeted result of the table's
    family (target alignment): DSP structures, one per threshold in ``betas``, under the target's shape
    rules (``finalize``) for a G>1 table; L1 channel-pruned ones at `CALIBRATION_CHANNEL_REDUCTIONS` for a G=1
    table (a reduction the alignment cannot reach is left out)."""
    from dsp_deploy.structure import dense_structure

    structures = {"dense": dense_structure(topo)}
    if calibration_family(groups) is None:
        for beta in betas:
            structures[f"pruned-b{beta:g}"] = finalize(sample_structure(model, groups, beta, multiple=multiple,
                                                                        topo=topo))
        return structures
    from dsp_deploy.baselines import L1ChannelPruner
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.hardware.whole import random_weights

    pruner = L1ChannelPruner(topo, random_weights(model, 0, topo.num_classes, topo.in_channels))
    pruner.align(multiple)
    for reduction in CALIBRATION_CHANNEL_REDUCTIONS:
        try:
            structures[f"channels-r{reduction:g}"] = pruner.match_reduction(reduction).structure
        except TrainingError:
            continue
    return structures


def calibrate_whole_model(groups: int, *, lowering: str = "auto", runs: int = 20,
                          betas: tuple[float, ...] = CALIBRATION_BETAS, topo: Any = None):
    """A calibrator for `build_table`: times the dense model and the pruned `calibration_structures` of
    the table's family whole and fits the table's scale and offset to them, so the fit captures how much
    of the parts' saving the export delivers for such structures (the DSP samples are shaped by the target's
    rules, `target_shape`, as latency-targeted results are, with the not yet calibrated table: only
    relative costs matter there)."""
    from dsp_deploy.hardware.latency import STAT, LatencyTable, fit_calibration
    from dsp_deploy.hardware.whole import measure_structures
    from dsp_deploy.models import topology

    def calibrate(table: LatencyTable, target: Target) -> None:
        shape = topo or topology(table.model)
        structures = calibration_structures(table.model, groups, channel_multiple(target), shape,
                                            target_shape(table, shape, target.backend), betas)
        measured = measure_structures(structures, target, lowering=lowering, runs=runs, stat=STAT)
        fit_calibration(table, [(structures[k], measured[k]) for k in structures])
        table.notes = dict(table.notes or {}, calibration={k: round(v, 4) for k, v in measured.items()},
                           calibration_lowering=lowering, calibration_family=calibration_family(groups) or "dsp")
        log.info("latency table %s calibrated: scale %.3f offset %.3f ms (%s)", table.model, table.scale,
                 table.offset, measured)
    return calibrate


def target_table(opts: Any, target: Target, topo: Any, groups: int) -> Any:
    """The latency table of ``target`` for ``groups`` (``opts.table``: its file, default the per-target
    cache; ``opts.runs``: timed runs when it must be measured), calibrated on structures of its family."""
    from dsp_deploy.hardware.latency import load_or_build

    return load_or_build(topo.model, target, [groups], path=opts.table, runs=opts.runs,
                         calibrate=calibrate_whole_model(groups, topo=topo), topo=topo,
                         family=calibration_family(groups))


def _measurer(opts: LatencyOptions, target: Target, topo: Any, state_dict: Mapping[str, Any]) -> Measure | None:
    """Exports the dense model and a structure and times them side by side on ``target`` (None
    without ``opts.measure``)."""
    from dsp_deploy.hardware.whole import measure_structures
    from dsp_deploy.structure import dense_structure

    if not opts.measure:
        return None
    return lambda structure: measure_structures({"dense": dense_structure(topo), "pruned": structure}, target,
                                                state_dict=state_dict, runs=max(opts.runs, 20), stat="both",
                                                min_seconds=opts.min_seconds,
                                                cache_path=opts.plan_cache, plan_runs=opts.plan_runs,
                                                plan_batches=opts.plan_batches)


def whole_flops(topo: Any) -> tuple[Callable[[ModelStructure], float], float]:
    """(whole-model FLOPs of a structure, dense's): the axis of the measured corrections."""
    from dsp_deploy.structure import count_costs, dense_structure

    def flops(structure: ModelStructure) -> float:
        return float(count_costs(structure, topo).flops)

    return flops, flops(dense_structure(topo))


Found = tuple[ModelStructure, dict[str, Any]]
"""A structure and what its search adds to the record (e.g. DSP's threshold beta)."""


Measure = Callable[[ModelStructure], dict[str, dict[str, float]]]
"""Times dense and a structure side by side: {"dense"|"pruned": {"median": ms, "min": ms}}."""


@dataclass
class _Try:
    """One measured structure of the closed loop."""

    ratio: float  # its whole-model FLOPs reduction (the axis the corrections search)
    budget: float | None  # the predicted-latency budget it was searched at (None: searched by FLOPs)
    structure: ModelStructure
    extra: dict[str, Any]
    measured: dict[str, dict[str, float]]
    smallest: bool  # the smallest allowed structure (the table put the budget out of reach)
    stat: str = "median"  # which of the timing's statistics the try is judged by

    def goal_ms(self, goal: LatencyGoal) -> float:
        return goal.budget_ms(self.measured["dense"][self.stat])

    def ms(self) -> float:
        return self.measured["pruned"][self.stat]

    def miss(self, goal: LatencyGoal) -> float:
        """Relative distance of the measured latency from the goal (measured against dense)."""
        return _relative_miss(self.ms(), self.goal_ms(goal))

    def step(self, goal: LatencyGoal) -> dict[str, Any]:
        searched = {"searched": "latency table", "budget_ms": round(self.budget, 4)} if self.budget is not None \
            else {"searched": "flops"}
        return {**searched, "flops_reduction_pct": round(100 * self.ratio, 3), "measured_ms": round(self.ms(), 4),
                "measured_goal_ms": round(self.goal_ms(goal), 4)}


def to_budget(opts: LatencyOptions, target: Target, table: Any, topo: Any, search: Callable[[float], Found],
              by_flops: Callable[[float], Found], smallest: Callable[[], Found],
              measure: Measure | None) -> tuple[ModelStructure, dict]:
    """Search the predicted-latency budget of the goal, then (given ``measure``) close the loop on
    the target: while the measured latency misses the goal (timed against dense side by side) by more
    than ``opts.tolerance``, measure another structure, up to ``opts.corrections`` times, and keep the
    try closest to the goal. The table predicts the parts and shapes the structure (alignment, one-group
    fallbacks); the export's whole-model behaviour (dense fallbacks, fusions) only a measurement shows,
    and it can make measured latency jump where predicted latency barely moves. So the corrections
    search the whole-model FLOPs reduction instead (``by_flops(ratio)``: the pruner's structure of the
    fewest FLOPs within ``1 - ratio`` of dense's, same shape rules), bracketing the goal between
    measured tries as a latency match does (`RatioBracket`); a correction that lands on a structure
    already measured ends the loop (its timing would add nothing). Where the table puts the goal out of reach,
    the smallest allowed structure is measured before giving up. TrainingError when the goal is out of
    reach by the table and, measured, by the smallest structure."""
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.structure import count_costs, dense_structure

    goal = opts.goal
    dense_ms = table.predict(dense_structure(topo), topo)
    budget = goal.budget_ms(dense_ms)
    flops, dense_flops = whole_flops(topo)

    def ratio_of(structure: ModelStructure) -> float:
        return 1.0 - flops(structure) / dense_flops

    out_of_reach: Exception | None = None
    try:
        found, is_smallest = search(budget), False
    except TrainingError as exc:
        if measure is None or opts.corrections < 1:
            raise
        found, is_smallest, out_of_reach = smallest(), True, exc  # the table may be pessimistic
    if measure is None:
        structure, extra = found
        measured = None
    else:
        tries = [_Try(ratio_of(found[0]), budget, *found, measure(found[0]), is_smallest, opts.stat)]
        bracket = RatioBracket(one_point_exponent=1.0)  # from one try: latency as FLOPs (their proxy)
        top: float | None = None  # the deepest reduction the shape rules allow (built when first needed)
        while True:
            last = tries[-1]
            bracket.add(last.ratio, math.log(last.ms() / last.goal_ms(goal)))
            if len(tries) > opts.corrections or last.miss(goal) <= opts.tolerance:
                break
            if last.smallest and last.ms() > last.goal_ms(goal):  # even the smallest one is too slow
                if len(tries) == 1:
                    raise TrainingError(f"{out_of_reach}; measured, the smallest structure runs {last.ms():.4g} "
                                        f"ms against a goal of {last.goal_ms(goal):.4g} ms") from None
                break
            if top is None:
                top = tries[0].ratio if tries[0].smallest else ratio_of(smallest()[0])
            ratio = bracket.next_ratio(0.0, top)
            if ratio is None:
                break
            deepest = ratio >= top - 1e-9
            found = smallest() if deepest else by_flops(ratio)
            if any(found[0].layers == t.structure.layers for t in tries):
                log.info("the next correction is a structure already measured (the pruner's steps are discrete): done")
                break
            tries.append(_Try(ratio_of(found[0]), None, *found, measure(found[0]), deepest, opts.stat))
        best = min(tries, key=lambda t: t.miss(goal))
        structure, extra, measured = best.structure, best.extra, best.measured
    costs = count_costs(structure, topo)
    record = latency_record(target.to_dict(), goal, goal.budget_ms(dense_ms), dense_ms,
                            table.predict(structure, topo), measured, costs.flops_reduction_pct)
    record["flops"] = costs.flops
    record.update(extra)
    if measure is not None:
        record["judged_by"] = opts.stat
        record["corrections"] = [t.step(goal) for t in tries]  # every measured try, the first included
    log.info("latency-targeted pruning: %s", record)
    return structure, record


def _relative_miss(ms: float, goal_ms: float) -> float:
    return abs(ms - goal_ms) / goal_ms


def _measured_miss(goal: LatencyGoal, record: Mapping[str, Any]) -> float | None:
    """Relative distance of a record's measured latency from the goal (None when not measured)."""
    if "measured_ms" not in record:
        return None
    if record.get("judged_by") == "min":
        return _relative_miss(record["measured_min_ms"], goal.budget_ms(record["measured_dense_min_ms"]))
    return _relative_miss(record["measured_ms"], goal.budget_ms(record["measured_dense_ms"]))


def relaxing_alignment(opts: LatencyOptions, target: Target,
                       attempt: Callable[[int], tuple[ModelStructure, dict[str, Any]]]) -> Budgeted:
    """``attempt(multiple)`` (a search to the goal at that alignment, `to_budget`) down the
    `ladder.alignment_ladder` while the goal is out of reach or the measured result misses it by more
    than ``opts.tolerance``; the result closest to the goal wins (the coarsest on a tie). The record says
    which multiple was used and, when more than one was tried, what each gave."""
    trials = LadderTrials()
    best: tuple[float, Budgeted] | None = None
    for multiple in alignment_ladder(channel_multiple(target), opts.channel_multiple is not None):
        found = trials.attempt(multiple, attempt)
        if found is None:
            continue
        structure, record = found
        miss = _measured_miss(opts.goal, record)
        trials.reached(multiple, "within the table's budget" if miss is None else f"measured {100 * miss:.1f}% off")
        if best is None or (miss is not None and miss < best[0]):
            best = (miss or 0.0, Budgeted(structure, dict(record, channel_multiple=multiple), multiple))
        if miss is None or miss <= opts.tolerance:
            break
    if best is None:
        raise trials.refusal()
    result = best[1]
    if trials.relaxed:
        result.record["alignment_tried"] = trials.tried
        log.info("latency-targeted pruning relaxed the alignment to %d channels: %s", result.multiple, trials.tried)
    return result


def dsp_to_budget(opts: LatencyOptions, topo: Any, state_dict: Mapping[str, Any], assignments: Mapping[str, Any],
                  groups: int, metadata: dict[str, Any], *, progress: bool = False,
                  criterion: str = "l2sq") -> Budgeted:
    """DSP group channel pruning with the highest threshold-kept importance (``criterion``) whose
    predicted latency fits the goal, under the target's shape rules (`budget.target_shape`): group sizes
    in the target's channel multiple (relaxed where that cannot reach the goal, `relaxing_alignment`), one
    group where groups don't pay, and on ONNX Runtime CPU a one-group conv's stream reads and block
    outputs whole (the export runs them whole: pruned, they would cost latency the search never sees
    and drop weights that cost nothing). Where those rules put the goal out of reach at every multiple,
    the search is repeated with the one-group fallback alone (grouped convs can cut what one-group ones
    must keep); the record's ``shape_rules`` says which rules the result was shaped by."""
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.hardware.latency import WHOLE_STREAM_BACKENDS
    from dsp_deploy.training.pruning import GroupChannelPruner

    target = opts.target()
    table = target_table(opts, target, topo, groups)
    measure = _measurer(opts, target, topo, state_dict)
    flops, dense_flops = whole_flops(topo)

    def shaped_by(finalize: Callable[[ModelStructure], ModelStructure]) -> Budgeted:
        def attempt(multiple: int) -> tuple[ModelStructure, dict[str, Any]]:
            pruner = GroupChannelPruner(topo, state_dict, assignments, groups,
                                        dict(metadata, channel_multiple=multiple), channel_multiple=multiple,
                                        finalize=finalize, criterion=criterion)

            def search(budget: float) -> Found:
                beta, _, structure = pruner.search_cost(lambda s: table.predict(s, topo), budget, progress=progress)
                return structure, {"beta": beta}

            def by_flops(ratio: float) -> Found:
                beta, _, structure = pruner.search_cost(flops, (1.0 - ratio) * dense_flops, what="FLOPs count",
                                                        unit="FLOPs", progress=progress)
                return structure, {"beta": beta}

            return to_budget(opts, target, table, topo, search, by_flops,
                             lambda: (pruner.structure(1.0), {"beta": 1.0}), measure)

        return relaxing_alignment(opts, target, attempt)

    whole_stream = target.backend in WHOLE_STREAM_BACKENDS
    try:
        found = shaped_by(target_shape(table, topo, target.backend))
        found.record["shape_rules"] = "whole stream" if whole_stream else "one-group fallback"
    except TrainingError as exc:
        if not whole_stream:
            raise
        log.warning("%s under the whole-stream rule; searching with the one-group fallback alone", exc)
        found = shaped_by(fallback_to_one_group(table, topo))
        found.record["shape_rules"] = "one-group fallback (the whole-stream rule cannot reach the goal)"
    return found


def channels_to_budget(opts: LatencyOptions, pruner: Any, state_dict: Mapping[str, Any]) -> Budgeted:
    """A channel pruner (`baselines.ChannelPruner`: L1, PFS, SCP) searched to the latency goal, its
    channel counts in the target's multiple (as DSP's group sizes, relaxed the same way)."""
    target = opts.target()
    topo = pruner.topo
    table = target_table(opts, target, topo, 1)
    measure = _measurer(opts, target, topo, state_dict)
    flops, dense_flops = whole_flops(topo)

    def attempt(multiple: int) -> tuple[ModelStructure, dict[str, Any]]:
        pruner.align(multiple)

        def search(budget: float) -> Found:
            return pruner.match_cost(lambda s: table.predict(s, topo), budget)[1], {}

        def by_flops(ratio: float) -> Found:
            return pruner.match_cost(flops, (1.0 - ratio) * dense_flops, what="FLOPs count", unit="FLOPs")[1], {}

        return to_budget(opts, target, table, topo, search, by_flops,
                         lambda: (pruner.structure_for(pruner.units), {}), measure)

    found = relaxing_alignment(opts, target, attempt)
    pruner.align(found.multiple)  # the pruner stays at the alignment of its result
    return found
