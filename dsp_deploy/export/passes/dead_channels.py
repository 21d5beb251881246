"""Remove output channels nobody reads.

If every consumer of a plain Conv's output (through an optional Relu) is a channel Gather,
the rows no Gather references are dead: drop them from W and b and renumber the Gathers

    Gather_j(Conv(x, W, b), i_j) = Gather_j(Conv(x, W[K], b[K]), r(i_j)),  K = sorted(U_j i_j)

where r maps an old row to its position in K. Grouped producers are left alone (their rows
must stay in G equal segments).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.graph import Graph, Node, index_array
from dsp_deploy.export.passes.base import Match, NoMatch, Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather


@dataclass
class Readers:
    """What reads a Conv's output: an optional Relu, then only channel Gathers."""

    relu: Node | None
    gathers: list[Node]


def readers(graph: Graph, conv: Node) -> Readers | NoMatch:
    """(optional Relu, channel Gathers) reading ``conv``'s output, or why that is not the case."""
    out = conv.outputs[0]
    relu = None
    users = graph.consumers(out)
    if len(users) == 1 and users[0].op == "Relu" and not graph.is_graph_output(out):
        relu = users[0]
        out = relu.outputs[0]
        users = graph.consumers(out)
    if graph.is_graph_output(out) or not users:
        return NoMatch("output is a graph output or unused")
    if not all(is_channel_gather(graph, u) and u.inputs[0] == out for u in users):
        return NoMatch("a consumer is not a channel Gather")
    return Readers(relu, users)


@dataclass
class DeadRows(Match):
    """The Conv ``node`` whose ``gathers`` read only rows ``keep`` (sorted)."""

    gathers: list[Node]
    keep: list[int]


class RemoveDeadChannels(Pass[DeadRows]):
    name = "dead-channels"
    ops = ("Conv",)

    def check(self, graph: Graph, node: Node) -> DeadRows | NoMatch:
        if node.attrs.get("group", 1) != 1:
            return NoMatch("grouped conv (rows must stay in equal segments)")
        if len(node.inputs) < 3 or graph.const_value(node.inputs[1]) is None:
            return NoMatch("no constant weight and bias")
        found = readers(graph, node)
        if isinstance(found, NoMatch):
            return found
        used = {int(i) for g in found.gathers for i in graph.consts[g.inputs[1]].reshape(-1)}
        if len(used) == graph.consts[node.inputs[1]].shape[0]:
            return NoMatch("every output channel is read")
        return DeadRows(node, found.gathers, sorted(used))

    def rewrite(self, graph: Graph, match: DeadRows) -> None:
        node, keep = match.node, match.keep
        where = {old: new for new, old in enumerate(keep)}
        weight, bias = graph.consts[node.inputs[1]], graph.consts[node.inputs[2]]
        node.inputs = (node.inputs[0], graph.const(np.ascontiguousarray(weight[keep]), f"{node.layer}.w"),
                       graph.const(np.ascontiguousarray(bias[keep]), f"{node.layer}.b"))
        for g in match.gathers:
            index = [where[int(i)] for i in graph.consts[g.inputs[1]].reshape(-1)]
            g.inputs = (g.inputs[0], graph.const(index_array(index), f"{g.layer}.idx"))
