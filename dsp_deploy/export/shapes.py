"""Channel counts of activations (axis 1), derived from the producers: the passes need them to
pad, slice and build index maps without running ONNX shape inference after every rewrite."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dsp_deploy.errors import ExportError

if TYPE_CHECKING:
    from dsp_deploy.export.graph import Graph

_SAME_CHANNELS = {"Relu", "BatchNormalization", "MaxPool", "GlobalAveragePool", "AveragePool", "Cast", "Identity",
                  "Add", "Sum"}


def channel_count(graph: Graph, tensor: str) -> int:
    """Number of channels of ``tensor`` (an NCHW activation)."""
    for value in graph.inputs:
        if value.name == tensor:
            return int(value.shape[1])  # type: ignore[arg-type]
    node = graph.producer(tensor)
    if node is None:
        raise ExportError(f"tensor '{tensor}' has no producer")
    if node.op == "Conv":
        return int(graph.consts[node.inputs[1]].shape[0])
    if node.op == "Gather":
        return int(graph.consts[node.inputs[1]].size)
    if node.op == "Pad":
        pads = graph.consts[node.inputs[1]]
        return channel_count(graph, node.inputs[0]) + int(pads[1] + pads[5])
    if node.op == "Slice":
        starts, ends = graph.consts[node.inputs[1]], graph.consts[node.inputs[2]]
        total = channel_count(graph, node.inputs[0])
        return int(min(ends[0], total) - starts[0])
    if node.op == "Concat":
        return sum(channel_count(graph, t) for t in node.inputs)
    if node.op in _SAME_CHANNELS:
        return channel_count(graph, node.inputs[0])
    raise ExportError(f"cannot tell the channel count of '{tensor}' (produced by {node.op})")
