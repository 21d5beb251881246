"""Channel-order propagation by composing index maps.

    Gather(Gather(t, a), b) = Gather(t, a[b])
    Gather(Pad0(t), b)      = Gather(t, b)      if every b < C(t)   (zero channel unused)
    Gather(t, 0..C(t)-1)    = t

A restore Gather (model order) followed by the next conv's input Gather thus becomes a single
Gather straight from the lowered conv's output, in the order that conv produces.
"""
from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, Node, index_array
from dsp_deploy.export.passes.base import Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather, is_zero_channel_pad


class ComposeGathers(Pass):
    name = "compose-gathers"
    ops = ("Gather",)

    def check(self, graph: Graph, node: Node) -> str | None:
        if not is_channel_gather(graph, node):
            return "not a constant channel Gather"
        src = graph.producer(node.inputs[0])
        index = graph.consts[node.inputs[1]]
        if is_channel_gather(graph, src):
            return None
        if is_zero_channel_pad(graph, src) and int(index.max()) < graph.channels(src.inputs[0]):  # type: ignore[union-attr]
            return None
        if index.tolist() == list(range(graph.channels(node.inputs[0]))):
            return None
        return "nothing to compose (input is not a Gather, an unused zero Pad, and the map is not identity)"

    def rewrite(self, graph: Graph, node: Node) -> None:
        src = graph.producer(node.inputs[0])
        index = graph.consts[node.inputs[1]]
        if is_channel_gather(graph, src):
            inner = graph.consts[src.inputs[1]]  # type: ignore[union-attr]
            node.inputs = [src.inputs[0], graph.const(index_array(np.asarray(inner)[index]), f"{node.layer}.idx")]  # type: ignore[union-attr]
        elif is_zero_channel_pad(graph, src) and int(index.max()) < graph.channels(src.inputs[0]):  # type: ignore[union-attr]
            node.inputs = [src.inputs[0], node.inputs[1]]  # type: ignore[union-attr]
        else:
            graph.replace_uses(node.outputs[0], node.inputs[0])
            graph.remove(node)
