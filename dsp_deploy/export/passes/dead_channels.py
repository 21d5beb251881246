"""Remove output channels nobody reads.

If every consumer of a plain Conv's output (through an optional Relu) is a channel Gather,
the rows no Gather references are dead: drop them from W and b and renumber the Gathers

    Gather_j(Conv(x, W, b), i_j) = Gather_j(Conv(x, W[K], b[K]), r(i_j)),  K = sorted(U_j i_j)

where r maps an old row to its position in K. Grouped producers are left alone (their rows
must stay in G equal segments).
"""
from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, Node, index_array
from dsp_deploy.export.passes.base import Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather


def readers(graph: Graph, conv: Node) -> tuple[Node | None, list[Node]] | str:
    """(optional Relu, channel Gathers) reading ``conv``'s output, or why that is not the case."""
    out = conv.outputs[0]
    relu = None
    users = graph.consumers(out)
    if len(users) == 1 and users[0].op == "Relu" and not graph.is_graph_output(out):
        relu = users[0]
        out = relu.outputs[0]
        users = graph.consumers(out)
    if graph.is_graph_output(out) or not users:
        return "output is a graph output or unused"
    if not all(is_channel_gather(graph, u) and u.inputs[0] == out for u in users):
        return "a consumer is not a channel Gather"
    return relu, users


class RemoveDeadChannels(Pass):
    name = "dead-channels"
    ops = ("Conv",)

    def check(self, graph: Graph, node: Node) -> str | None:
        if node.attrs.get("group", 1) != 1:
            return "grouped conv (rows must stay in equal segments)"
        if len(node.inputs) < 3 or graph.const_value(node.inputs[1]) is None:
            return "no constant weight and bias"
        found = readers(graph, node)
        if isinstance(found, str):
            return found
        used = {int(i) for g in found[1] for i in graph.consts[g.inputs[1]].reshape(-1)}
        if len(used) == graph.consts[node.inputs[1]].shape[0]:
            return "every output channel is read"
        return None

    def rewrite(self, graph: Graph, node: Node) -> None:
        _, gathers = readers(graph, node)  # type: ignore[misc]
        keep = sorted({int(i) for g in gathers for i in graph.consts[g.inputs[1]].reshape(-1)})
        where = {old: new for new, old in enumerate(keep)}
        weight, bias = graph.consts[node.inputs[1]], graph.consts[node.inputs[2]]
        node.inputs = (node.inputs[0], graph.const(np.ascontiguousarray(weight[keep]), f"{node.layer}.w"),
                       graph.const(np.ascontiguousarray(bias[keep]), f"{node.layer}.b"))
        for g in gathers:
            index = [where[int(i)] for i in graph.consts[g.inputs[1]].reshape(-1)]
            g.inputs = (g.inputs[0], graph.const(index_array(index), f"{g.layer}.idx"))
