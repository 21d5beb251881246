"""Multiply-accumulates an exported ONNX graph really executes (per image), counted from its Conv and
Gemm/MatMul nodes: padded groups, zero rows or channels a lowering keeps all count. Set beside the
structure's FLOPs it shows whether an export runs the compute its FLOPs promise."""
from __future__ import annotations

import math
import os

from dsp_deploy.errors import BenchError

MOVEMENT_OPS = ("Gather", "Pad", "Slice", "Concat", "Split", "Transpose", "Reshape", "ScatterElements")


def onnx_macs(path: str | os.PathLike[str]) -> int:
    """Conv + Gemm/MatMul MACs for batch 1 of the ONNX file at ``path``."""
    return onnx_costs(path)[0]


def onnx_costs(path: str | os.PathLike[str]) -> tuple[int, dict[str, int]]:
    """(Conv + Gemm/MatMul MACs for batch 1, count of each data-movement op) of an ONNX file."""
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        model = shape_inference.infer_shapes(onnx.load(os.fspath(path)))
    except Exception as exc:  # noqa: BLE001 - protobuf/inference errors
        raise BenchError(f"{path}: cannot read the ONNX graph to count MACs: {exc}") from None
    graph = model.graph
    dims: dict[str, list[int]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        shape = info.type.tensor_type.shape
        dims[info.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim]
    for init in graph.initializer:
        dims[init.name] = list(init.dims)
    constants = {}
    for node in graph.node:  # weights stored as Constant nodes (some exporters do that)
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            constants[node.output[0]] = list(numpy_helper.to_array(node.attribute[0].t).shape)
    dims.update(constants)
    total = 0
    moves: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in MOVEMENT_OPS:
            moves[node.op_type] = moves.get(node.op_type, 0) + 1
        if node.op_type == "Conv":
            weight, out = dims.get(node.input[1]), dims.get(node.output[0])
            if not weight or not out or any(d <= 0 for d in out[2:]):
                raise BenchError(f"{path}: cannot tell the shapes of Conv node '{node.name}' to count MACs")
            total += math.prod(weight) * math.prod(out[2:])
        elif node.op_type == "MatMul" and _batched_matmul_macs(dims, node) is not None:
            total += _batched_matmul_macs(dims, node)  # type: ignore[operator]
        elif node.op_type in ("Gemm", "MatMul"):
            weight = dims.get(node.input[1])
            if not weight:
                raise BenchError(f"{path}: cannot tell the weight shape of {node.op_type} node '{node.name}'")
            total += math.prod(weight)
    return total, moves


def _batched_matmul_macs(dims: dict[str, list[int]], node) -> int | None:
    """MACs of a MatMul from its output shape and reduction size, the (dynamic) batch axis counted
    as 1: covers activation x activation products (DPPNet's per-sample kernels), which have no weight
    shape to read. None when the shapes are not fully known past the batch axis."""
    a, out = dims.get(node.input[0]), dims.get(node.output[0])
    if not a or not out or a[-1] <= 0 or any(d <= 0 for d in out[1:]):
        return None
    return a[-1] * math.prod(out[1:]) * max(out[0], 1) if len(out) > 1 else None
