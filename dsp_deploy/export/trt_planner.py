"""The lowering planner for TensorRT (and TensorRT for RTX) engines.

Where a TensorRT runtime can run (a CUDA GPU is visible and a TensorRT flavour imports), each
pruned residual block is cut out like the ONNX Runtime planner does (units.py), lowered with
every TensorRT candidate (dense, grouped, branches, union), built as a small engine with the
runtime's TensorRT loaders and timed with its runner and timing loop (interleaved, median) at
each planning batch; the shared selection rule (``pick_candidate``: fastest, never slower than
dense) picks the lowering.

Where no TensorRT runtime can run (this project's CPU-only machines: TensorRT for RTX builds
engines there but cannot execute them), nothing can be timed, so the documented default is used:
``grouped`` (Gather + Conv group=G), the lowering TensorRT's grouped-convolution kernels are made
for. The plan then says ``measured: false`` and why, and the engine manifest repeats it.
"""
from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from dsp_deploy.errors import BenchError, DSPDeployError, ExportError
from dsp_deploy.export.graph import Graph
from dsp_deploy.export.onnx_io import to_model
from dsp_deploy.export.pipeline import lower_graph
from dsp_deploy.export.plan import TENSORRT, LayerChoice, LoweringPlan
from dsp_deploy.export.planner import distinct_candidates, forced_plan, plan_machine, record_choice
from dsp_deploy.export.units import FORCED, Unit, find_units, unit_graph
from dsp_deploy.models.topology import Topology
from dsp_deploy.runtime.timing import time_runners
from dsp_deploy.runtime.trt_engine import build_engine
from dsp_deploy.runtime.trt_flavour import flavour_version, trt_module
from dsp_deploy.runtime.trt_runner import TrtRunner
from dsp_deploy.utils.machine import cuda_gpus

log = logging.getLogger(__name__)

DEFAULT_LOWERING = "grouped"
"""Used where TensorRT cannot run: permuted grouped convs (what the TensorRT profiles always used)."""
CANDIDATES: tuple[str, ...] = ("dense", "grouped", "branches", "union")


def runtime_unavailable(flavour: str | None = None) -> str | None:
    """Why no TensorRT runtime can execute engines here (``None`` when one can)."""
    if not cuda_gpus():
        return "no CUDA GPU visible, so TensorRT engines cannot run here"
    import torch

    if not torch.cuda.is_available():  # engines run through torch CUDA tensors (engines.TrtRunner)
        return "torch sees no CUDA device, so TensorRT engines cannot run here"
    try:
        trt_module(flavour)
    except DSPDeployError as exc:
        return str(exc)
    return None


def default_plan(plain: Graph, topo: Topology, reason: str, flavour: str | None = None) -> LoweringPlan:
    """The documented default (``grouped`` for every pruned block), marked as not measured."""
    plan = forced_plan(plain, topo, DEFAULT_LOWERING, backend=TENSORRT)
    plan.mode, plan.measured = "auto", False
    structure = plain.context.structure
    for unit in find_units(plain, topo):
        pruned = not all(structure[s.name].is_dense for s in unit.convs)
        plan.chosen[unit.name] = f"{DEFAULT_LOWERING} (default)" if pruned else "dense (not pruned)"
    plan.machine["runtime"] = _runtime_label(flavour)
    plan.notes["not_measured"] = (f"TensorRT lowering not measured: {reason}; "
                                  f"the documented default '{DEFAULT_LOWERING}' is used")
    return plan


def _runtime_label(flavour: str | None) -> str | None:
    try:
        module, name = trt_module(flavour)
    except DSPDeployError:
        return None
    return f"{name} {flavour_version(module)}"


def build_candidate_engines(plain: Graph, unit: Unit, batches: Sequence[int], workdir: Path, *, fp16: bool,
                            flavour: str | None) -> tuple[dict[str, Path], dict[str, dict[str, LayerChoice]]]:
    """Each TensorRT candidate of ``unit`` lowered and built as a small engine in a fresh folder
    under ``workdir`` (file stem = candidate name); works without a GPU (TensorRT for RTX)."""
    import onnx

    options = distinct_candidates(plain, unit, {name: FORCED[name] for name in CANDIDATES})
    folder = Path(tempfile.mkdtemp(prefix="unit-", dir=workdir))
    engines: dict[str, Path] = {}
    for name, choices in options.items():
        graph = unit_graph(plain, unit)
        lower_graph(graph, choices, fp16=fp16)
        onnx_path = folder / f"{name}.onnx"
        onnx.save(to_model(graph), str(onnx_path))
        engines[name] = folder / f"{name}.engine"
        build_engine(onnx_path, engines[name], batch=(min(batches), max(batches), max(batches)), flavour=flavour,
                     inspect=False)
    return engines, options


def measure_unit_trt(plain: Graph, unit: Unit, batches: Sequence[int], workdir: Path, *, fp16: bool,
                     flavour: str | None, runs: int
                     ) -> tuple[dict[str, dict[int, float]], dict[str, dict[str, LayerChoice]]]:
    """Median ms per candidate and batch for one block (the runtime's TensorRT runner and timing
    loop, candidates interleaved)."""
    engines, options = build_candidate_engines(plain, unit, batches, workdir, fp16=fp16, flavour=flavour)
    runners = {name: TrtRunner(path, flavour=flavour, name=name) for name, path in engines.items()}
    try:
        timed = time_runners(runners, batches, runs=runs, warmup=5)
    except BenchError as exc:
        raise ExportError(f"TensorRT planning: a candidate did not run ({exc})", layer=unit.name) from None
    times = {name: {b: s.median_ms for b, s in per_batch.items()} for name, per_batch in timed.items()}
    return times, options


def tensorrt_plan(plain: Graph, topo: Topology, *, batches: Sequence[int] = (1,), fp16: bool = False,
                  flavour: str | None = None, runs: int = 20, tolerance: float = 0.02) -> LoweringPlan:
    """Measured TensorRT plan where TensorRT can run, else :func:`default_plan` (see module docstring)."""
    reason = runtime_unavailable(flavour)
    if reason is not None:
        log.info("TensorRT lowering not measured (%s): default '%s'", reason, DEFAULT_LOWERING)
        return default_plan(plain, topo, reason, flavour)
    structure = plain.context.structure
    plan = LoweringPlan("auto", {spec.name: LayerChoice() for spec in topo.convs}, backend=TENSORRT, measured=True,
                machine=plan_machine(_runtime_label(flavour)))
    plan.notes["planning_batches"] = list(batches)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dsp-deploy-trt-plan-") as tmp:
        for unit in find_units(plain, topo):
            if all(structure[s.name].is_dense for s in unit.convs):
                plan.chosen[unit.name] = "dense (not pruned)"
                continue
            times, options = measure_unit_trt(plain, unit, batches, Path(tmp), fp16=fp16, flavour=flavour, runs=runs)
            record_choice(plan, unit, times, options, batches, tolerance)
    plan.notes["planning_seconds"] = round(time.perf_counter() - start, 1)
    return plan

