"""A Gather of a contiguous, increasing channel range is a Slice:

    Gather(t, [s, s+1, ..., e-1]) = Slice(t, starts=[s], ends=[e], axes=[1])

Slices are cheaper to describe and TensorRT can often make them views.
"""
from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather


class GatherToSlice(Pass):
    name = "gather-to-slice"
    ops = ("Gather",)

    def check(self, graph: Graph, node: Node) -> str | None:
        if not is_channel_gather(graph, node):
            return "not a constant channel Gather"
        index = graph.consts[node.inputs[1]].reshape(-1)
        if index.ndim != 1 or len(index) == 0 or np.any(np.diff(index) != 1):
            return "indices are not one contiguous increasing run"
        return None

    def rewrite(self, graph: Graph, node: Node) -> None:
        index = graph.consts[node.inputs[1]].reshape(-1)
        start, end = int(index[0]), int(index[-1]) + 1
        consts = [graph.const(np.array([v], np.int64), f"{node.layer}.slice") for v in (start, end, 1)]
        graph.add("Slice", [node.inputs[0], *consts], layer=node.layer, name=node.name, before=node,
                  output=node.outputs[0])
        graph.remove(node)
