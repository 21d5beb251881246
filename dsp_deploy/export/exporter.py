"""`export_onnx`: checkpoint -> plain graph -> plan -> lowered ONNX, checked (onnx.checker and
parity against the PyTorch model in ONNX Runtime at two batch sizes) before anything is
written; the ONNX file and its plan JSON are then written atomically."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsp_deploy import targets
from dsp_deploy.checkpoint import Checkpoint
from dsp_deploy.errors import ExportError, UsageError
from dsp_deploy.export.plan import ORT_CPU, TENSORRT, LoweringPlan, PassResult, check_backend, check_mode
from dsp_deploy.utils.atomic import atomic_path

if TYPE_CHECKING:
    from dsp_deploy.export.graph import Graph

log = logging.getLogger(__name__)

PARITY_BATCHES = (1, 5)


@dataclass
class ExportResult:
    """What an export produced."""

    onnx_path: Path
    plan_path: Path
    plan: LoweringPlan
    parity_max_diff: dict[int, float] = field(default_factory=dict)
    node_counts: dict[str, int] = field(default_factory=dict)
    model: str = ""

    @property
    def max_diff(self) -> float:
        return max(self.parity_max_diff.values(), default=float("nan"))

    @property
    def passes(self) -> list[PassResult]:
        """Each export pass's applications and skip reasons, as recorded in the plan JSON."""
        return self.plan.passes


def check_multiple(channel_multiple: int | None) -> int:
    """The planner's channel alignment: ``channel_multiple`` checked; None -> the alignment of this
    machine's ONNX Runtime CPU kernels (8 on AVX2, 16 on AVX-512/AMX: `dsp_deploy.targets`)."""
    if channel_multiple is None:
        return targets.channel_multiple(targets.make_target("ort-cpu"))
    if isinstance(channel_multiple, bool) or not isinstance(channel_multiple, int) or not 1 <= channel_multiple <= 256:
        raise UsageError(f"channel multiple must be an integer in 1..256, got {channel_multiple!r}")
    return channel_multiple


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
    """Max |ONNX Runtime - PyTorch| per batch size (the runtime's comparator, one thread each);
    ParityError past the tolerance."""
    from dsp_deploy.errors import ParityError
    from dsp_deploy.runtime.comparator import compare_runners
    from dsp_deploy.runtime.ort import OrtRunner
    from dsp_deploy.runtime.torch_runner import TorchRunner

    onnx_runner = OrtRunner(model_bytes, threads=1, name="onnxruntime")
    torch_runner = TorchRunner(module=torch_model, threads=1, input_shape=(in_channels, *input_size), name="pytorch")
    onnx_runner.activate()  # (the comparator deactivates it)
    name = onnx_runner.input_specs()[0].name
    rng = np.random.default_rng(seed)
    feeds = [{name: rng.standard_normal((b, in_channels, *input_size)).astype(np.float32)} for b in batches]
    scale = 3e-2 if fp16 else 1e-4
    result = compare_runners(torch_runner, onnx_runner, feeds,
                             atol=lambda ref: scale * max(1.0, float(np.abs(ref).max())))
    for batch, diff, tol, (ref_shape, out_shape) in zip(batches, result.max_abs, result.atol, result.shapes):
        if out_shape != ref_shape:
            raise ParityError(f"ONNX output shape {out_shape} != PyTorch {ref_shape} at batch {batch}; nothing written")
        if not np.isfinite(diff) or diff > tol:
            raise ParityError(f"ONNX Runtime output differs from the PyTorch model by {diff:.3g} at batch {batch} "
                              f"(tolerance {tol:.3g}); nothing written")
    return dict(zip(batches, result.max_abs))


def narrow_plain_graph(plain: "Graph") -> PassResult:
    """Narrow the plain graph's residual streams to their live channels before planning, so the
    planner measures the blocks as they will run; the pass's report (the widths are in
    ``plain.context.narrowed``)."""
    from dsp_deploy.export.passes import NarrowStreams

    result = NarrowStreams().run(plain)
    for anchor, reason in result.skipped.items():
        log.debug("stream at %s kept its width: %s", anchor, reason)
    return result


@dataclass
class Lowered:
    """A checkpoint lowered by the plan: the graph both the ONNX and the torch export are made of."""

    checkpoint: Checkpoint
    torch_model: Any
    plan: LoweringPlan
    graph: "Graph"


def lower_checkpoint(checkpoint_or_model: Any, *, lowering: str = "auto", model_name: str | None = None,
                     plan_batches: Sequence[int] | None = None, cache_path: str | None = None,
                     runs: int = 15, backend: str = ORT_CPU, fp16: bool = False,
                     flavour: str | None = None, channel_multiple: int | None = None) -> Lowered:
    """Checkpoint (path or Checkpoint) or dense torch ResNet (+ ``model_name``) -> plain graph ->
    narrowed streams -> plan (measured or forced, for ``backend``) -> lowered graph, with the
    whole-model fallback (ONNX Runtime CPU plans only). ``channel_multiple``: the target's
    channel alignment for the ORT planner's padded candidates (None: 16, MLAS's AVX-512 block)."""
    from dsp_deploy.export.build import build_plain_graph
    from dsp_deploy.export.pipeline import lower_graph
    from dsp_deploy.export.planner import auto_plan, forced_plan, whole_model_check
    from dsp_deploy.models import get_config, topology

    check_mode(lowering)
    check_backend(backend)
    checkpoint, torch_model = _resolve(checkpoint_or_model, model_name)
    structure = checkpoint.structure
    topo = topology(checkpoint.model, structure.num_classes, structure.input_size, structure.in_channels)
    family = get_config(checkpoint.model).family
    weights = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    plain = build_plain_graph(topo, weights, structure, stem_pool=family == "imagenet")
    narrowing = narrow_plain_graph(plain)
    narrowed = {name: f"{before}->{after}" for name, (before, after) in plain.context.narrowed.items()}
    batches = tuple(plan_batches or ((1, 32) if family == "cifar" else (1,)))
    if lowering == "auto" and backend == TENSORRT:
        from dsp_deploy.export.trt_planner import tensorrt_plan

        plan = tensorrt_plan(plain, topo, batches=batches, fp16=fp16, flavour=flavour)
    elif lowering == "auto":
        plan = auto_plan(plain, topo, batches=batches, runs=runs, cache_path=cache_path,
                         channel_multiple=check_multiple(channel_multiple))
    else:
        plan = forced_plan(plain, topo, lowering, backend=backend)
    plan.notes.update(model=checkpoint.model)
    if narrowed:
        plan.notes["narrowed_streams"] = narrowed
    graph = plain.copy()
    plan.passes = [narrowing, *lower_graph(graph, plan.layers)]
    if lowering == "auto" and backend == ORT_CPU and plan.chosen:  # the ORT safety net
        ok, report = whole_model_check(plain, graph, (structure.in_channels, *structure.input_size), batches)
        plan.notes["whole_model_min_ms"] = report
        if not ok:
            log.warning("the planned model was slower than dense as a whole (%s): exporting the dense lowering", report)
            measured = plan
            plan = forced_plan(plain, topo, "dense")
            plan.mode, plan.measurements = "auto", measured.measurements
            plan.measured, plan.machine = True, measured.machine
            plan.chosen = {unit: "dense (whole-model fallback)" for unit in measured.chosen}
            plan.notes.update(measured.notes, fallback="auto plan slower than dense as a whole",
                              whole_model_min_ms=report)
            graph = plain.copy()
            plan.passes = [narrowing, *lower_graph(graph, plan.layers)]
    return Lowered(checkpoint, torch_model, plan, graph)


def export_onnx(checkpoint_or_model: Any, out_path: str | os.PathLike[str], *, lowering: str = "auto",
                fp16: bool = False, opset: int = 17, parity: bool = True, model_name: str | None = None,
                plan_batches: Sequence[int] | None = None, cache_path: str | None = None,
                runs: int = 15, backend: str = ORT_CPU, flavour: str | None = None,
                channel_multiple: int | None = None) -> ExportResult:
    """Export a checkpoint (path or Checkpoint) or a dense torch ResNet (+ ``model_name``) to ONNX.

    ``lowering``: auto (chosen per block for ``backend``: measured on ONNX Runtime CPU, see
    planner.py, or for ``tensorrt`` see trt_planner.py, ``flavour`` picking the TensorRT) or
    grouped|branches|union|dense. ``channel_multiple``: the target's channel alignment used by
    the ORT planner (None: 16). Nothing is written unless onnx.checker and the parity check pass.
    """
    check_mode(lowering)
    if opset < 13:
        raise UsageError(f"opset {opset} is too old (the exporter needs >= 13; default 17)")
    from dsp_deploy.models import get_config

    if get_config(getattr(checkpoint_or_model, "model", None) or model_name or "resnet20").is_dppnet \
            or _is_dppnet_file(checkpoint_or_model):
        return _export_dppnet(checkpoint_or_model, out_path, model_name, fp16=fp16, opset=opset, parity=parity)
    lowered = lower_checkpoint(checkpoint_or_model, lowering=lowering, model_name=model_name,
                               plan_batches=plan_batches, cache_path=cache_path, runs=runs, backend=backend,
                               fp16=fp16, flavour=flavour, channel_multiple=channel_multiple)
    checkpoint, torch_model, plan, graph = lowered.checkpoint, lowered.torch_model, lowered.plan, lowered.graph
    structure = checkpoint.structure
    plan.notes.update(fp16=fp16, opset=opset)
    if fp16:
        from dsp_deploy.export.passes import CastToFloat16

        plan.passes.append(CastToFloat16().run(graph))
    meta = {"dsp_deploy.model": checkpoint.model, "dsp_deploy.lowering": lowering, "dsp_deploy.backend": backend,
            "dsp_deploy.structure_groups": str(structure.max_groups)}
    parity_fn = (lambda blob: parity_check(blob, torch_model, tuple(structure.input_size), fp16=fp16,
                                           in_channels=structure.in_channels)) if parity else None
    return write_export(graph, opset, meta, out_path, plan, checkpoint.model, parity_fn)


def write_export(graph: "Graph", opset: int, meta: dict[str, str], out_path: str | os.PathLike[str], plan: LoweringPlan,
                 model: str, parity: Callable[[bytes], dict[int, float]] | None) -> ExportResult:
    """Check a lowered graph (onnx.checker, then ``parity`` on its bytes) and write it with its plan.

    Both go to temporary files first; the plan is renamed into place, then the model: a run killed
    at any point leaves either no new model or a complete model with its plan beside it.
    """
    import onnx

    from dsp_deploy.export.onnx_io import to_model

    proto = to_model(graph, opset, meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker raises several types
        raise ExportError(f"onnx.checker rejected the exported graph: {str(exc).splitlines()[0]}") from None
    blob = proto.SerializeToString()
    diffs = parity(blob) if parity is not None else {}
    out = Path(out_path)
    plan_file = plan_path_for(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(blob)
        with atomic_path(plan_file) as plan_tmp:
            plan_tmp.write_text(plan.to_json(), encoding="utf-8")
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    log.info("wrote %s (%d nodes) and %s", out, len(graph.nodes), plan_file)
    return ExportResult(out, plan_file, plan, diffs, counts, model)


def _is_dppnet_file(source: Any) -> bool:
    """True if ``source`` is a path to a DPPNet checkpoint."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    from dsp_deploy.checkpoint import load_checkpoint
    from dsp_deploy.models import get_config

    return get_config(load_checkpoint(source).model).is_dppnet


def _export_dppnet(source: Any, out_path: str | os.PathLike[str], model_name: str | None, **options: Any
                   ) -> ExportResult:
    """DPPNet checkpoints and modules go through export/dppnet.py (its own lowering)."""
    from dsp_deploy.checkpoint import build_model, dense_checkpoint, load_checkpoint
    from dsp_deploy.export.dppnet import export_dppnet

    if isinstance(source, (str, os.PathLike)):
        checkpoint = load_checkpoint(source)
    elif isinstance(source, Checkpoint):
        checkpoint = source
    else:
        checkpoint = dense_checkpoint(str(model_name), source)
        return export_dppnet(checkpoint, source.eval(), out_path, **options)
    return export_dppnet(checkpoint, build_model(checkpoint), out_path, **options)


def load_plan(path: str | os.PathLike[str]) -> LoweringPlan:
    """Read a plan JSON written by export_onnx (ExportError naming the file if it is not one)."""
    return LoweringPlan.load(path)
