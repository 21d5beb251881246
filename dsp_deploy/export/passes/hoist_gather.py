"""Move a channel Gather (or a zero channel Pad) above an elementwise Relu.

    Relu(Gather(t, i)) = Gather(Relu(t), i)      (Relu acts per element)
    Relu(Pad0(t))      = Pad0(Relu(t))           (Relu(0) = 0)

After this a restore Gather sits directly in front of its consumer's Gather, where
compose-gathers can merge the two, and the Conv before it is followed by its Relu again
(which ONNX Runtime and TensorRT fuse into the conv).
"""
from __future__ import annotations

from dataclasses import dataclass

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, NoMatch, Pass


def is_channel_gather(graph: Graph, node: Node | None) -> bool:
    return (node is not None and node.op == "Gather" and node.attrs.get("axis", 0) == 1
            and graph.const_value(node.inputs[1]) is not None)


def is_zero_channel_pad(graph: Graph, node: Node | None) -> bool:
    """A Pad that only appends channels (axis 1, end) with the constant 0."""
    if node is None or node.op != "Pad" or node.attrs.get("mode", "constant") != "constant" or len(node.inputs) > 2:
        return False
    pads = graph.const_value(node.inputs[1])
    return pads is not None and len(pads) == 8 and not any(pads[[0, 1, 2, 3, 4, 6, 7]])


@dataclass
class ReluOfMove(Match):
    """``node`` is the Relu, ``src`` the channel Gather or zero Pad it alone reads."""

    src: Node


class HoistGather(Pass[ReluOfMove]):
    name = "hoist-gather"
    ops = ("Relu",)

    def check(self, graph: Graph, node: Node) -> ReluOfMove | NoMatch:
        src = graph.producer(node.inputs[0])
        if src is None or not (is_channel_gather(graph, src) or is_zero_channel_pad(graph, src)):
            return NoMatch("input is not a channel Gather or zero-channel Pad")
        if graph.single_consumer(node.inputs[0]) is not node:
            return NoMatch("the Gather/Pad output has other consumers")
        return ReluOfMove(node, src)

    def rewrite(self, graph: Graph, match: ReluOfMove) -> None:
        node, src = match.node, match.src
        relu = graph.add("Relu", [src.inputs[0]], layer=node.layer, name=node.name, before=src)
        src.inputs = (relu.outputs[0], *src.inputs[1:])
        graph.replace_uses(node.outputs[0], src.outputs[0])
        graph.remove(node)
