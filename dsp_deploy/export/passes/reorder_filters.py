"""Channel-order propagation on the producer side: permute a conv's filters (within each of
its group segments) into the order its consumers read them.

    Gather_j(Conv(x, W, b), i_j) = Gather_j(Conv(x, W[p], b[p]), q[i_j]),  q = p^-1

for any permutation p that maps each group segment onto itself (so a grouped conv stays
valid). p sorts the rows of each segment by their first appearance in the consumers' indices,
so a consumer that reads a group's filters in one run gets a contiguous range (a Slice, or
nothing at all) instead of a scattered Gather. Free at run time: only weights move.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.graph import Graph, Node, index_array
from dsp_deploy.export.passes.base import Match, NoMatch, Pass
from dsp_deploy.export.passes.dead_channels import readers


def consumer_order(rows: int, group: int, indices: list[np.ndarray]) -> list[int]:
    """The permutation p: per segment, rows by first appearance in ``indices`` (unread last)."""
    first: dict[int, int] = {}
    for pos, row in enumerate(int(r) for index in indices for r in index.reshape(-1)):
        first.setdefault(row, pos)
    per = rows // group
    order: list[int] = []
    for s in range(group):
        segment = range(s * per, (s + 1) * per)
        order += sorted(segment, key=lambda r: (first.get(r, len(first) + r), r))
    return order


@dataclass
class FilterOrder(Match):
    """The Conv ``node``, the Gathers reading it and the filter permutation ``order`` (p)."""

    gathers: list[Node]
    order: list[int]


class ReorderFilters(Pass[FilterOrder]):
    name = "reorder-filters"
    ops = ("Conv",)

    def check(self, graph: Graph, node: Node) -> FilterOrder | NoMatch:
        if (len(node.inputs) < 3 or graph.const_value(node.inputs[1]) is None
                or graph.const_value(node.inputs[2]) is None):
            return NoMatch("no constant weight and bias")
        found = readers(graph, node)
        if isinstance(found, NoMatch):
            return found
        rows = graph.consts[node.inputs[1]].shape[0]
        indices = [graph.consts[g.inputs[1]] for g in found.gathers]
        order = consumer_order(rows, int(node.attrs.get("group", 1)), indices)
        if order == list(range(rows)):
            return NoMatch("filters already in the order the consumers read them")
        return FilterOrder(node, found.gathers, order)

    def rewrite(self, graph: Graph, match: FilterOrder) -> None:
        node, order = match.node, match.order
        weight, bias = graph.consts[node.inputs[1]], graph.consts[node.inputs[2]]
        where = np.empty(len(order), np.int64)
        where[order] = np.arange(len(order))
        node.inputs = (node.inputs[0], graph.const(np.ascontiguousarray(weight[order]), f"{node.layer}.w"),
                       graph.const(np.ascontiguousarray(bias[order]), f"{node.layer}.b"))
        for g in match.gathers:
            index = index_array(where[graph.consts[g.inputs[1]].reshape(-1)])
            g.inputs = (g.inputs[0], graph.const(index, f"{g.layer}.idx"))
