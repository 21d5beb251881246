"""`export_onnx`: checkpoint -> plain graph -> plan -> lowered ONNX, checked (onnx.checker and
parity against the PyTorch model in ONNX Runtime at two batch sizes) before anything is
written; the ONNX file and its plan JSON are then written atomically."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsp_deploy.checkpoint import Checkpoint
from dsp_deploy.errors import ExportError, UsageError
from dsp_deploy.export.plan import Plan, check_mode
from dsp_deploy.utils.atomic import atomic_path, write_text_atomic
from dsp_deploy.utils.jsonfile import read_json_object

if TYPE_CHECKING:
    from dsp_deploy.export.graph import Graph

log = logging.getLogger(__name__)

PARITY_BATCHES = (1, 5)


@dataclass
class ExportResult:
    """What an export produced."""

    onnx_path: Path
    plan_path: Path
    plan: Plan
    parity_max_diff: dict[int, float] = field(default_factory=dict)
    node_counts: dict[str, int] = field(default_factory=dict)
    model: str = ""

    @property
    def max_diff(self) -> float:
        return max(self.parity_max_diff.values(), default=float("nan"))


def plan_path_for(onnx_path: str | os.PathLike[str]) -> Path:
    """Where the plan of ``model.onnx`` goes: ``model.onnx.plan.json``."""
    return Path(f"{os.fspath(onnx_path)}.plan.json")


def _resolve(source: Any, model_name: str | None) -> tuple[Checkpoint, Any]:
    """(checkpoint, eval-mode masked torch model) from a path, a Checkpoint or a torch module."""
    from dsp_deploy.checkpoint import build_model, dense_checkpoint, load_checkpoint
    from dsp_deploy.export.torch_check import check_module

    if isinstance(source, (str, os.PathLike)):
        checkpoint = load_checkpoint(source)
    elif isinstance(source, Checkpoint):
        checkpoint = source
    else:
        if model_name is None:
            raise UsageError("exporting a torch module needs model_name= (e.g. 'resnet56')")
        check_module(source, model_name)
        checkpoint = dense_checkpoint(model_name, source)
    model = build_model(checkpoint)
    check_module(model, checkpoint.model)
    return checkpoint, model


def parity_check(model_bytes: bytes, torch_model: Any, input_size: tuple[int, int], *, fp16: bool,
                 batches: Sequence[int] = PARITY_BATCHES, seed: int = 0, in_channels: int = 3) -> dict[int, float]:
    """Max |ONNX Runtime - PyTorch| per batch size; ParityError past the tolerance."""
    import torch

    from dsp_deploy.errors import ParityError
    from dsp_deploy.export.measure import ort_session

    session = ort_session(model_bytes, threads=1)
    rng = np.random.default_rng(seed)
    diffs = {}
    threads = torch.get_num_threads()
    for batch in batches:
        x = rng.standard_normal((batch, in_channels, *input_size)).astype(np.float32)
        torch.set_num_threads(1)  # tiny batches: one thread is fast and immune to oversubscription
        try:
            with torch.no_grad():
                ref = torch_model(torch.from_numpy(x)).numpy()
        finally:
            torch.set_num_threads(threads)
        out = session.run(None, {session.get_inputs()[0].name: x})[0]
        if out.shape != ref.shape:
            raise ParityError(f"ONNX output shape {out.shape} != PyTorch {ref.shape} at batch {batch}; nothing written")
        diff = float(np.abs(out.astype(np.float64) - ref).max())
        scale = max(1.0, float(np.abs(ref).max()))
        tol = (3e-2 if fp16 else 1e-4) * scale
        if not np.isfinite(diff) or diff > tol:
            raise ParityError(f"ONNX Runtime output differs from the PyTorch model by {diff:.3g} at batch {batch} "
                              f"(tolerance {tol:.3g}); nothing written")
        diffs[batch] = diff
    return diffs


def narrow_plain_graph(plain: "Graph") -> dict[str, str]:
    """Narrow the plain graph's residual streams to their live channels before planning, so the
    planner measures the blocks as they will run; returns {stream: "before->after"}."""
    from dsp_deploy.export.passes import NarrowStreams
    from dsp_deploy.export.passes.narrow_streams import NARROWED

    result = NarrowStreams().run(plain)
    for anchor, reason in result.skipped.items():
        log.debug("stream at %s kept its width: %s", anchor, reason)
    return {name: f"{before}->{after}" for name, (before, after) in plain.meta.get(NARROWED, {}).items()}


def export_onnx(checkpoint_or_model: Any, out_path: str | os.PathLike[str], *, lowering: str = "auto",
                fp16: bool = False, opset: int = 17, parity: bool = True, model_name: str | None = None,
                plan_batches: Sequence[int] | None = None, cache_path: str | None = None,
                runs: int = 15) -> ExportResult:
    """Export a checkpoint (path or Checkpoint) or a dense torch ResNet (+ ``model_name``) to ONNX.

    ``lowering``: auto (measured per block, see planner.py) or grouped|branches|union|dense.
    Nothing is written unless onnx.checker and the parity check pass.
    """
    import onnx

    from dsp_deploy.export.build import build_plain_graph
    from dsp_deploy.export.onnx_io import to_model
    from dsp_deploy.export.pipeline import lower_graph
    from dsp_deploy.export.planner import auto_plan, forced_plan, whole_model_check
    from dsp_deploy.models import get_config, topology

    check_mode(lowering)
    if opset < 13:
        raise UsageError(f"opset {opset} is too old (the exporter needs >= 13; default 17)")
    checkpoint, torch_model = _resolve(checkpoint_or_model, model_name)
    structure = checkpoint.structure
    topo = topology(checkpoint.model, structure.num_classes, structure.input_size, structure.in_channels)
    family = get_config(checkpoint.model).family
    weights = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    plain = build_plain_graph(topo, weights, structure, stem_pool=family == "imagenet")
    narrowed = narrow_plain_graph(plain)
    if lowering == "auto":
        batches = tuple(plan_batches or ((1, 32) if family == "cifar" else (1,)))
        plan = auto_plan(plain, topo, batches=batches, runs=runs, cache_path=cache_path)
    else:
        plan = forced_plan(plain, topo, lowering)
    plan.notes.update(model=checkpoint.model, fp16=fp16, opset=opset)
    if narrowed:
        plan.notes["narrowed_streams"] = narrowed
    graph = plain.copy()
    lower_graph(graph, plan.layers)
    if lowering == "auto" and plan.chosen:
        ok, report = whole_model_check(plain, graph, (structure.in_channels, *structure.input_size), batches)
        plan.notes["whole_model_min_ms"] = report
        if not ok:
            log.warning("the planned model was slower than dense as a whole (%s): exporting the dense lowering", report)
            measured = plan
            plan = forced_plan(plain, topo, "dense")
            plan.mode, plan.measurements = "auto", measured.measurements
            plan.chosen = {unit: "dense (whole-model fallback)" for unit in measured.chosen}
            plan.notes.update(measured.notes, fallback="auto plan slower than dense as a whole", whole_model_min_ms=report)
            graph = plain.copy()
            lower_graph(graph, plan.layers)
    if fp16:
        from dsp_deploy.export.passes import CastToFloat16

        CastToFloat16().run(graph)
    meta = {"dsp_deploy.model": checkpoint.model, "dsp_deploy.lowering": lowering,
            "dsp_deploy.structure_groups": str(structure.max_groups)}
    proto = to_model(graph, opset, meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker raises several types
        raise ExportError(f"onnx.checker rejected the exported graph: {str(exc).splitlines()[0]}") from None
    blob = proto.SerializeToString()
    diffs = parity_check(blob, torch_model, tuple(structure.input_size), fp16=fp16,
                                 in_channels=structure.in_channels) if parity else {}
    out = Path(out_path)
    plan_file = plan_path_for(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(blob)
    try:
        write_text_atomic(plan_file, plan.to_json())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    log.info("wrote %s (%d nodes) and %s", out, len(graph.nodes), plan_file)
    return ExportResult(out, plan_file, plan, diffs, counts, checkpoint.model)


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan JSON written by export_onnx (ExportError naming the file if it is not one)."""
    data = read_json_object(path, ExportError, "lowering plan", format_name="dsp-deploy/lowering-plan")
    try:
        return Plan.from_dict(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ExportError(f"{os.fspath(path)}: malformed lowering plan ({type(exc).__name__}: {exc})") from None
