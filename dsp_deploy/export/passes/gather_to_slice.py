"""A Gather of a contiguous, increasing channel range is a Slice:

    Gather(t, [s, s+1, ..., e-1]) = Slice(t, starts=[s], ends=[e], axes=[1])

Slices are cheaper to describe and TensorRT can often make them views.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, NoMatch, Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather


@dataclass
class ChannelRun(Match):
    """The Gather ``node`` reads channels ``start`` .. ``end`` - 1."""

    start: int
    end: int


class GatherToSlice(Pass[ChannelRun]):
    name = "gather-to-slice"
    ops = ("Gather",)

    def check(self, graph: Graph, node: Node) -> ChannelRun | NoMatch:
        if not is_channel_gather(graph, node):
            return NoMatch("not a constant channel Gather")
        index = graph.consts[node.inputs[1]].reshape(-1)
        if index.ndim != 1 or len(index) == 0 or np.any(np.diff(index) != 1):
            return NoMatch("indices are not one contiguous increasing run")
        return ChannelRun(node, int(index[0]), int(index[-1]) + 1)

    def rewrite(self, graph: Graph, match: ChannelRun) -> None:
        node = match.node
        consts = [graph.const(np.array([v], np.int64), f"{node.layer}.slice") for v in (match.start, match.end, 1)]
        graph.add("Slice", [node.inputs[0], *consts], layer=node.layer, name=node.name, before=node,
                  output=node.outputs[0])
        graph.remove(node)
