"""Channel-order propagation by composing index maps.

    Gather(Gather(t, a), b) = Gather(t, a[b])
    Gather(Pad0(t), b)      = Gather(t, b)      if every b < C(t)   (zero channel unused)
    Gather(t, 0..C(t)-1)    = t

A restore Gather (model order) followed by the next conv's input Gather thus becomes a single
Gather straight from the lowered conv's output, in the order that conv produces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dsp_deploy.export.graph import Graph, Node, index_array
from dsp_deploy.export.passes.base import Match, NoMatch, Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather, is_zero_channel_pad


@dataclass
class Composable(Match):
    """The Gather ``node`` with index map ``index`` reads ``src``'s output; ``rule`` says which
    identity of the module docstring applies: Gather of a Gather, of an unused zero Pad, or the
    identity map."""

    rule: Literal["gather", "unused-pad", "identity"]
    src: Node | None
    index: np.ndarray


class ComposeGathers(Pass[Composable]):
    name = "compose-gathers"
    ops = ("Gather",)

    def check(self, graph: Graph, node: Node) -> Composable | NoMatch:
        if not is_channel_gather(graph, node):
            return NoMatch("not a constant channel Gather")
        src = graph.producer(node.inputs[0])
        index = graph.consts[node.inputs[1]]
        if is_channel_gather(graph, src):
            return Composable(node, "gather", src, index)
        if src is not None and is_zero_channel_pad(graph, src) and int(index.max()) < graph.channels(src.inputs[0]):
            return Composable(node, "unused-pad", src, index)
        if index.tolist() == list(range(graph.channels(node.inputs[0]))):
            return Composable(node, "identity", src, index)
        return NoMatch("nothing to compose (input is not a Gather, an unused zero Pad, and the map is not identity)")

    def rewrite(self, graph: Graph, match: Composable) -> None:
        node, src = match.node, match.src
        if match.rule == "identity":
            graph.replace_uses(node.outputs[0], node.inputs[0])
            graph.remove(node)
            return
        assert src is not None
        if match.rule == "gather":
            inner = graph.consts[src.inputs[1]]
            node.inputs = (src.inputs[0], graph.const(index_array(np.asarray(inner)[match.index]), f"{node.layer}.idx"))
        else:
            node.inputs = (src.inputs[0], node.inputs[1])
