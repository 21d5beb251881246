"""The lowered model as a physically compact ``torch.nn.Module``.

It is made from the lowered export graph itself (``exporter.lower_checkpoint``: the graph the ONNX
file is serialised from), so the per-layer choice (grouped / branches / union / dense), channel
orders and residual merges are decided once, by the passes. Each graph node becomes one small
module: Conv -> ``nn.Conv2d`` (``groups=G`` for grouped, one per branch), Gather ->
``index_select``, Slice -> a view, Pad -> zero channels, Concat -> ``torch.cat``. Only the weights
of the lowered convs exist (no masks, no pruned channels), and ``forward`` is a straight-line
loop over a static op list, which ``torch.compile``, CUDA graphs and ``torch.export`` all take.

A spec (JSON-able op list) plus a state_dict describe the module completely; that pair is what
``save_lowered`` writes and ``load_lowered`` reads back with ``torch.load(weights_only=True)``
(tensors and plain containers only: no arbitrary pickle).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dsp_deploy.errors import ExportError
from dsp_deploy.utils.jsonfile import DocFormat

if TYPE_CHECKING:
    import torch

    from dsp_deploy.export.graph import Graph

# The torch export (``--format torch``): a torch.save dict with this header around the JSON spec.
TORCH_EXPORT_FORMAT = DocFormat("torch-lowered", 1, "dsp-deploy torch export")


def _symmetric(pads: list[int], what: str) -> int:
    half = len(pads) // 2
    if list(pads[:half]) != list(pads[half:]) or len(set(pads)) > 1:
        raise ExportError(f"{what}: asymmetric pads {pads} are not supported by the torch export")
    return int(pads[0])


def graph_spec(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(spec, state) of a lowered graph: ops with wiring and integer settings, and the tensors
    keyed as the module's state_dict (``ops.<i>.weight`` ...)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ExportError("the torch export needs one graph input and one output")
    slots = {graph.inputs[0].name: 0}
    ops: list[dict[str, Any]] = []
    state: dict[str, np.ndarray] = {}
    for i, node in enumerate(graph.nodes):
        data = [t for t in node.inputs if t not in graph.consts]
        consts = [graph.consts[t] for t in node.inputs if t in graph.consts]
        try:
            wires = [slots[t] for t in data]
        except KeyError as exc:
            raise ExportError(f"node '{node.name}' reads {exc} before it is computed") from None
        op: dict[str, Any] = {"op": node.op, "in": wires, "layer": node.layer}
        where = f"node '{node.name}' ({node.op})"
        if node.op == "Conv":
            weight, bias = consts[0], consts[1] if len(consts) > 1 else None
            if any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
                raise ExportError(f"{where}: dilated convs are not supported by the torch export")
            op.update(shape=list(weight.shape), groups=int(node.attrs.get("group", 1)), bias=bias is not None,
                      stride=int(node.attrs.get("strides", [1, 1])[0]),
                      padding=_symmetric(node.attrs.get("pads", [0, 0, 0, 0]), where))
            state[f"ops.{i}.weight"] = weight
            if bias is not None:
                state[f"ops.{i}.bias"] = bias
        elif node.op == "Gather":
            if node.attrs.get("axis") != 1 or len(consts) != 1:
                raise ExportError(f"{where}: only constant channel gathers are supported")
            state[f"ops.{i}.index"] = consts[0].reshape(-1).astype(np.int64)
            op["channels"] = int(consts[0].size)
        elif node.op == "Slice":
            starts, ends = consts[0], consts[1]
            axes = consts[2] if len(consts) > 2 else np.array([1])
            steps = consts[3] if len(consts) > 3 else np.array([1])
            if int(axes[0]) != 1 or int(steps[0]) != 1 or len(starts) != 1:
                raise ExportError(f"{where}: only unit-step channel slices are supported")
            op.update(start=int(starts[0]), end=int(ends[0]))
        elif node.op == "Pad":
            pads = consts[0]
            if any(pads[[0, 1, 2, 3, 4, 6, 7]]) or node.attrs.get("mode", "constant") != "constant" or len(consts) > 1:
                raise ExportError(f"{where}: only zero channel padding is supported")
            op["count"] = int(pads[5])
        elif node.op == "Gemm":
            if node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0:
                raise ExportError(f"{where}: only Gemm with alpha=beta=1 and no transA is supported")
            weight = consts[0] if node.attrs.get("transB", 0) else consts[0].T
            state[f"ops.{i}.weight"] = np.ascontiguousarray(weight)
            state[f"ops.{i}.bias"] = consts[1]
            op["shape"] = list(weight.shape)
        elif node.op == "MaxPool":
            op.update(kernel=int(node.attrs["kernel_shape"][0]), stride=int(node.attrs.get("strides", [1, 1])[0]),
                      padding=_symmetric(node.attrs.get("pads", [0, 0, 0, 0]), where))
        elif node.op == "Flatten":
            op["axis"] = int(node.attrs.get("axis", 1))
        elif node.op not in ("Relu", "Add", "Concat", "GlobalAveragePool", "Identity") or consts:
            raise ExportError(f"{where} is not supported by the torch export")
        if len(node.outputs) != 1:
            raise ExportError(f"{where}: one output expected")
        slots[node.outputs[0]] = len(slots)
        ops.append(op)
    if graph.outputs[0].name not in slots:
        raise ExportError("the graph output is never computed")
    spec = {**TORCH_EXPORT_FORMAT.header(), "ops": ops,
            "output": slots[graph.outputs[0].name], "input_shape": [int(d) for d in graph.inputs[0].shape[1:]],
            "meta": {}}
    return spec, state


def _make_op(spec: Mapping[str, Any]) -> torch.nn.Module:
    from torch import nn

    from dsp_deploy.export import torch_ops

    kind = spec["op"]
    if kind == "Conv":
        out, per_group, k, _ = spec["shape"]
        conv = nn.Conv2d(per_group * spec["groups"], out, k, stride=spec["stride"], padding=spec["padding"],
                         groups=spec["groups"], bias=spec["bias"])
        conv.requires_grad_(False)
        return conv
    if kind == "Gemm":
        linear = nn.Linear(spec["shape"][1], spec["shape"][0])
        linear.requires_grad_(False)
        return linear
    if kind == "Gather":
        return torch_ops.ChannelGather(spec["channels"])
    if kind == "Slice":
        return torch_ops.ChannelSlice(spec["start"], spec["end"])
    if kind == "Pad":
        return torch_ops.ZeroChannels(spec["count"])
    if kind == "MaxPool":
        return nn.MaxPool2d(spec["kernel"], spec["stride"], spec["padding"])
    if kind == "Flatten":
        return nn.Flatten(spec["axis"])
    simple = {"Relu": nn.ReLU, "Add": torch_ops.Add, "Concat": torch_ops.ChannelCat, "Identity": nn.Identity,
              "GlobalAveragePool": lambda: nn.AdaptiveAvgPool2d(1)}
    if kind not in simple:
        raise ExportError(f"unknown op '{kind}' in the torch export spec")
    return simple[kind]()


def build_module(spec: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The LoweredModule of ``spec`` (with ``state`` loaded when given: numpy arrays or tensors)."""
    import torch

    from dsp_deploy.export.torch_ops import LoweredModule

    TORCH_EXPORT_FORMAT.check(spec, ExportError, "spec")
    module = LoweredModule([_make_op(op) for op in spec["ops"]], [list(op["in"]) for op in spec["ops"]],
                           int(spec["output"]), tuple(spec["input_shape"]))
    module.spec = dict(spec)
    if state is not None:
        tensors = {k: torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in state.items()}
        missing, unexpected = module.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise ExportError(f"the torch export's state does not match its spec (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return module.eval()


def module_from_graph(graph: Graph, meta: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The lowered graph (float32, see ``lower_checkpoint``) as an eval-mode LoweredModule."""
    spec, state = graph_spec(graph)
    spec["meta"] = dict(meta or {})
    return build_module(spec, state)


def save_lowered(module: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Write spec (JSON text) + state_dict atomically, loadable with ``weights_only=True``."""
    import torch

    from dsp_deploy.utils.atomic import atomic_path

    doc = {**TORCH_EXPORT_FORMAT.header(), "spec": json.dumps(module.spec),
           "state": {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(doc, tmp)


def load_lowered(path: str | os.PathLike[str], map_location: str = "cpu") -> torch.nn.Module:
    """Rebuild a module written by ``save_lowered`` (ExportError naming the file if it is not one)."""
    import pickle

    import torch

    where = os.fspath(path)
    try:
        doc = torch.load(where, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ExportError(f"{where}: no such file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{where}: not a dsp-deploy torch export ({first})") from None
    TORCH_EXPORT_FORMAT.check(doc, ExportError, where)
    try:
        spec = json.loads(doc["spec"])
        return build_module(spec, doc["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: weight shapes off the spec
        raise ExportError(f"{where}: malformed torch export ({type(exc).__name__}: {exc})") from None


def lowered_module(checkpoint_or_model: Any, *, lowering: str = "auto", model_name: str | None = None,
                   **plan_options: Any) -> tuple[torch.nn.Module, Any]:
    """(LoweredModule, Lowered) of a checkpoint: the exporter's lowering (``lower_checkpoint``) as torch."""
    from dsp_deploy.export.exporter import lower_checkpoint

    lowered = lower_checkpoint(checkpoint_or_model, lowering=lowering, model_name=model_name, **plan_options)
    meta = {"model": lowered.checkpoint.model, "lowering": lowering,
            "layers": {name: choice.label() for name, choice in lowered.plan.layers.items()}}
    return module_from_graph(lowered.graph, meta), lowered


def torch_parity(module: Any, reference: Any, input_shape: tuple[int, ...], batches: tuple[int, ...] = (1, 5),
                 seed: int = 0) -> dict[int, float]:
    """Max |module - reference| per batch (float32, CPU); ParityError past 1e-4 x max(1, |ref|)."""
    import torch

    from dsp_deploy.errors import ParityError

    rng = np.random.default_rng(seed)
    diffs = {}
    for batch in batches:
        x = torch.from_numpy(rng.standard_normal((batch, *input_shape)).astype(np.float32))
        with torch.no_grad():
            ref, out = reference(x), module(x)
        diff = float((out.double() - ref.double()).abs().max())
        if not diff <= 1e-4 * max(1.0, float(ref.abs().max())):
            raise ParityError(f"the lowered torch module differs from the PyTorch model by {diff:.3g} at batch "
                              f"{batch}; nothing written")
        diffs[batch] = diff
    return diffs


def export_torch(checkpoint_or_model: Any, out_path: str | os.PathLike[str], *, lowering: str = "auto",
                 parity: bool = True, model_name: str | None = None, **plan_options: Any) -> Any:
    """Write the lowered model as a torch file (``save_lowered``) plus its plan JSON; before writing,
    check it against ONNX Runtime on the same lowered graph and against the PyTorch model."""
    from pathlib import Path

    from dsp_deploy.export.exporter import ExportResult, parity_check, plan_path_for
    from dsp_deploy.export.onnx_io import to_model
    from dsp_deploy.utils.atomic import write_text_atomic

    module, lowered = lowered_module(checkpoint_or_model, lowering=lowering, model_name=model_name, **plan_options)
    size = tuple(lowered.checkpoint.structure.input_size)
    diffs: dict[int, float] = {}
    if parity:
        blob = to_model(lowered.graph).SerializeToString()
        diffs = parity_check(blob, module, size, fp16=False)
        torch_parity(module, lowered.torch_model, (3, *size))
    out = Path(out_path)
    plan_file = plan_path_for(out)
    lowered.plan.notes.update(format="torch")
    save_lowered(module, out)
    try:
        write_text_atomic(plan_file, lowered.plan.to_json())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    counts: dict[str, int] = {}
    for node in lowered.graph.nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    return ExportResult(out, plan_file, lowered.plan, diffs, counts, lowered.checkpoint.model)
