"""The lowering planner: per residual block, pick the candidate lowering that runs fastest on
the target backend (ONNX Runtime CPU), measured, never slower than dense.

Each block is cut out of the plain graph, lowered with every candidate (units.py), put between
two dense 1x1 convs and timed in ONNX Runtime with the benchmark settings at each planning
batch size (min of interleaved runs; cached on disk). Among the candidates no slower than
dense at any planning batch (within ``tolerance``), the one with the lowest t/t_dense at the
largest batch wins (ties: the mean over batches); if none qualifies the block stays dense.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dsp_deploy.export.graph import Graph
from dsp_deploy.export.measure import CostCache, ort_session, time_interleaved
from dsp_deploy.export.onnx_io import to_model
from dsp_deploy.export.pipeline import lower_graph
from dsp_deploy.export.plan import ORT_CPU, LayerChoice, LoweringPlan
from dsp_deploy.export.units import DEFAULT_MULTIPLE, FORCED, Rule, Unit, candidates_for, find_units, unit_graph
from dsp_deploy.models.topology import Topology

log = logging.getLogger(__name__)


def choices_for(unit: Unit, rule: Rule, structure: Mapping) -> dict[str, LayerChoice]:
    return {spec.name: rule(spec, structure[spec.name]) for spec in unit.convs}


def forced_plan(plain: Graph, topo: Topology, mode: str, backend: str = ORT_CPU) -> LoweringPlan:
    """Every block lowered the same way (``grouped``, ``branches``, ``union`` or ``dense``);
    ``backend`` is the target the export is for (nothing is measured)."""
    structure = plain.context.structure
    layers = {spec.name: LayerChoice() for spec in topo.convs}
    for unit in find_units(plain, topo):
        layers.update(choices_for(unit, FORCED[mode], structure))
    return LoweringPlan(mode, layers, backend=backend, machine=plan_machine(None))


def distinct_candidates(plain: Graph, unit: Unit, rules: Mapping[str, Rule]) -> dict[str, dict[str, LayerChoice]]:
    """Candidate name -> per-conv choices for ``unit``; candidates that lower the block exactly
    like dense are merged into ``dense`` (always present)."""
    structure = plain.context.structure
    distinct: dict[str, dict[str, LayerChoice]] = {}
    for name, rule in rules.items():
        choices = choices_for(unit, rule, structure)
        if name == "dense" or all(c.lowering == "dense" for c in choices.values()):
            distinct.setdefault("dense", choices)
        else:
            distinct[name] = choices
    if "dense" not in distinct:
        distinct["dense"] = choices_for(unit, FORCED["dense"], structure)
    return distinct


def pick_candidate(times: Mapping[str, Mapping[int, float]], batches: Sequence[int], tolerance: float = 0.02) -> str:
    """The block-candidate selection shared by every planner. ``times``: candidate -> batch -> ms
    (must hold ``dense``). Among candidates no slower than dense at any batch (within
    ``tolerance``), the lowest t/t_dense at the largest batch wins (ties: the mean over batches,
    then dense); none eligible -> ``dense``."""
    dense = times["dense"]
    largest = max(batches)

    def score(name: str) -> tuple[float, float, bool]:
        ratios = [times[name][b] / dense[b] for b in batches]
        return times[name][largest] / dense[largest], float(np.mean(ratios)), name != "dense"

    eligible = [n for n in times if all(times[n][b] <= dense[b] * (1 + tolerance) for b in batches)]
    return min(eligible, key=score) if eligible else "dense"


def plan_machine(runtime: str | None) -> dict[str, Any]:
    """Where a plan is made: CPU, GPU (None without one), platform and the timing runtime."""
    from dsp_deploy.utils.machine import machine_info

    info = machine_info()
    return {"cpu": info["cpu"], "gpu": info["gpu"], "platform": info["platform"], "runtime": runtime}


def _candidate_bytes(plain: Graph, unit: Unit, choices: Mapping[str, LayerChoice]) -> tuple[bytes, bytes]:
    """(the candidate's ONNX model, its weight-free form for the cache key: CostCache.timing_bytes)."""
    graph = unit_graph(plain, unit)
    lower_graph(graph, choices)
    model = to_model(graph)
    return model.SerializeToString(), CostCache.timing_bytes(model)


def measure_unit(plain: Graph, unit: Unit, batches: Sequence[int], cache: CostCache, *, runs: int,
                 multiple: int = DEFAULT_MULTIPLE,
                 ) -> tuple[dict[str, dict[int, float]], dict[str, dict[str, LayerChoice]]]:
    """ms per candidate and batch for one block (min of ``runs`` interleaved runs); candidates
    aligned to ``multiple`` channels."""
    distinct = distinct_candidates(plain, unit, candidates_for(unit, multiple))
    blobs: dict[str, bytes] = {}
    shapes: dict[str, bytes] = {}
    for name, choices in distinct.items():
        blob, shape = _candidate_bytes(plain, unit, choices)
        if blob not in blobs.values() or name == "dense":  # same graph as an earlier candidate: measured once
            blobs[name], shapes[name] = blob, shape
    result: dict[str, dict[int, float]] = {name: {} for name in blobs}
    c, h, w = unit.in_shape
    joint = b"".join(name.encode() + b"\0" + shape for name, shape in sorted(shapes.items()))
    distinct = {name: distinct[name] for name in blobs}
    for batch in batches:
        key = CostCache.key(joint, batch)  # all candidates together: only timings taken side by side compare
        cached = cache.get(key)
        if not isinstance(cached, dict) or set(cached) != set(blobs):
            sessions = {name: ort_session(blob) for name, blob in blobs.items()}
            feed = np.random.default_rng(0).standard_normal((batch, c, h, w)).astype(np.float32)
            cached = {name: min(t) for name, t in time_interleaved(sessions, feed, runs=runs).items()}
            cache.put(key, cached)
        for name in blobs:
            result[name][batch] = float(cached[name])
    return result, distinct


def auto_plan(plain: Graph, topo: Topology, *, batches: Sequence[int] = (1,), runs: int = 15,
              tolerance: float = 0.02, cache_path: str | None = None,
              channel_multiple: int = DEFAULT_MULTIPLE) -> LoweringPlan:
    """Measure every block's candidates and keep the fastest (see module docstring).
    ``channel_multiple``: the target's channel alignment (8 on AVX2, 16 on AVX-512), the size
    padded candidates round group and filter counts up to."""
    import onnxruntime as ort
    from tqdm import tqdm

    structure = plain.context.structure
    plan = LoweringPlan("auto", {spec.name: LayerChoice() for spec in topo.convs}, backend=ORT_CPU, measured=True,
                machine=plan_machine(f"onnxruntime {ort.__version__}"))
    plan.notes["planning_batches"] = list(batches)
    plan.notes["channel_multiple"] = channel_multiple
    cache = CostCache(cache_path)
    start = time.perf_counter()
    units = find_units(plain, topo)
    for unit in tqdm(units, desc="planning", unit="block", leave=False, disable=None):
        if all(structure[s.name].is_dense for s in unit.convs):
            plan.chosen[unit.name] = "dense (not pruned)"
            continue
        times, options = measure_unit(plain, unit, batches, cache, runs=runs, multiple=channel_multiple)
        record_choice(plan, unit, times, options, batches, tolerance)
        cache.save()
    plan.notes["planning_seconds"] = round(time.perf_counter() - start, 1)
    return plan


def record_choice(plan: LoweringPlan, unit: Unit, times: Mapping[str, Mapping[int, float]],
                  options: Mapping[str, Mapping[str, LayerChoice]], batches: Sequence[int], tolerance: float) -> str:
    """Pick ``unit``'s candidate from ``times`` and write choice and timings into ``plan``."""
    best = pick_candidate(times, batches, tolerance)
    plan.layers.update(options[best])
    plan.chosen[unit.name] = best
    plan.measurements[unit.name] = {n: {f"b{b}": round(times[n][b], 4) for b in batches} for n in times}
    log.debug("%s: %s (%s)", unit.name, best, times)
    return best


def whole_model_check(plain: Graph, lowered: Graph, input_shape: tuple[int, int, int], batches: Sequence[int], *,
                      runs: int = 10, tolerance: float = 0.03) -> tuple[bool, dict[str, dict[str, float]]]:
    """The safety net behind "never slower than dense": time the whole lowered model against
    the dense lowering of the same graph (interleaved, min of ``runs``) at each batch.
    Returns (no slower everywhere within ``tolerance``, {"b<N>": {"auto": ms, "dense": ms}})."""
    dense = plain.copy()
    lower_graph(dense, {})
    blobs = {"auto": to_model(lowered).SerializeToString(), "dense": to_model(dense).SerializeToString()}
    sessions = {name: ort_session(blob) for name, blob in blobs.items()}
    report: dict[str, dict[str, float]] = {}
    ok = True
    for batch in batches:
        feed = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
        times = {k: min(v) for k, v in time_interleaved(sessions, feed, runs=runs).items()}
        report[f"b{batch}"] = {k: round(v, 4) for k, v in times.items()}
        ok = ok and times["auto"] <= times["dense"] * (1 + tolerance)
    return ok, report
