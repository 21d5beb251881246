"""Fold a channel Gather into the filters of the Conv that produces its input.

    Gather(Conv(x, W, b), i) = Conv(x, W[i], b[i])          (rows picked, repeated or reordered)
    Gather(Pad0(Conv(x, W, b)), i) = Conv(x, W0[i], b0[i])  (W0, b0: W, b plus one zero row)

with an optional Relu between Conv and Gather (Relu commutes with row selection). This is
"channel order folded into the previous layer": the producer writes exactly the layout its
consumer reads, so no copy runs at inference. It is how a block's last conv writes its
output aligned with the residual stream (the Add then fuses into the conv), and how an inner
conv hands the next conv its inputs in order. A grouped producer (group=G) qualifies when i
splits into G equal segments, segment s reading only rows of group s (or the zero row).
Layers named in ``layers`` are always folded (duplicated rows cost FLOPs: the planner decides).
Others are folded when the Gather repeats no computed row (only the zero channel / zero filters
may repeat) and either picks no more rows than the conv has (folding adds no work) or the layer
is pruned with G=1 (plain channel pruning: no group layout to keep) and the Gather is the next
conv's input: the rows it adds are the zero padding that conv asked for, a few zero filters
instead of a Pad and a Gather copying the tensor.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, NoMatch, Pass
from dsp_deploy.export.passes.hoist_gather import is_channel_gather, is_zero_channel_pad


@dataclass
class GatherOfConv(Match):
    """The Gather ``node`` (rows ``index``) reads ``conv`` (constant ``weight``, ``bias``) through
    an optional ``relu`` and zero ``pad``, each edge with a single consumer."""

    conv: Node
    relu: Node | None
    pad: Node | None
    weight: np.ndarray
    bias: np.ndarray
    index: np.ndarray


def _chain(graph: Graph, gather: Node) -> tuple[Node, Node | None, Node | None] | NoMatch:
    """(conv, relu, pad) feeding ``gather`` through single-consumer edges, or why not."""
    node = graph.producer(gather.inputs[0])
    pad = relu = None
    if node is not None and is_zero_channel_pad(graph, node):
        pad, node = node, graph.producer(node.inputs[0])
    if node is not None and node.op == "Relu":
        relu, node = node, graph.producer(node.inputs[0])
    if node is None or node.op != "Conv":
        return NoMatch("input is not produced by a Conv (through Relu/zero Pad)")
    chain = [n for n in (node, relu, pad, gather) if n is not None]
    for first, second in zip(chain, chain[1:]):
        if graph.single_consumer(first.outputs[0]) is not second:
            return NoMatch(f"'{first.name}' has other consumers")
    return node, relu, pad


def _segments_ok(index: np.ndarray, rows: int, group: int, zero: int) -> bool:
    if group == 1:
        return True
    if len(index) % group:
        return False
    per_in, per_out = rows // group, len(index) // group
    for s in range(group):
        seg = index[s * per_out:(s + 1) * per_out]
        if any(r != zero and r // per_in != s for r in seg):
            return False
    return True


def _plain_pruned(graph: Graph, conv: Node) -> bool:
    """A group=1 Conv of a layer the structure prunes with G=1 (plain channel pruning)."""
    layer = graph.context.structure.get(conv.layer or "")
    return conv.attrs.get("group", 1) == 1 and layer is not None and layer.groups == 1


def _feeds_convs(graph: Graph, gather: Node) -> bool:
    """The Gather is the (padded) input of convs, not a write into a residual stream."""
    users = graph.consumers(gather.outputs[0])
    return bool(users) and all(u.op == "Conv" and u.inputs[0] == gather.outputs[0] for u in users)


def _repeats_only_zeros(index: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> bool:
    """True if no computed row is picked twice: the rows folding adds are all-zero ones (the
    zero channel of a Pad, or zero filters), which cost MACs but no Gather/Pad copies."""
    rows = weight.shape[0]
    zero = set(np.flatnonzero(~weight.reshape(rows, -1).any(axis=1) & (bias == 0)).tolist())
    computed = [int(r) for r in index if r < rows and int(r) not in zero]
    return len(computed) == len(set(computed))


class FoldGatherIntoConv(Pass[GatherOfConv]):
    name = "fold-gather-into-conv"
    ops = ("Gather",)

    def __init__(self, layers: Collection[str] | None = None) -> None:
        self.layers = layers

    def check(self, graph: Graph, node: Node) -> GatherOfConv | NoMatch:
        if not is_channel_gather(graph, node):
            return NoMatch("not a constant channel Gather")
        found = _chain(graph, node)
        if isinstance(found, NoMatch):
            return found
        conv, relu, pad = found
        weight = graph.const_value(conv.inputs[1])
        if weight is None or len(conv.inputs) < 3 or graph.const_value(conv.inputs[2]) is None:
            return NoMatch("producer Conv has no constant weight and bias")
        bias = graph.consts[conv.inputs[2]]
        index = graph.consts[node.inputs[1]].reshape(-1)
        if self.layers is not None and conv.layer not in self.layers:
            if not _repeats_only_zeros(index, weight, bias):
                return NoMatch("producer not selected for folding by the plan (folding would repeat computed rows)")
            if len(index) > weight.shape[0] and not (_plain_pruned(graph, conv) and _feeds_convs(graph, node)):
                return NoMatch("producer not selected for folding by the plan (folding would add rows other than "
                               "a G=1 layer's zero padding for the next conv)")
        if not _segments_ok(index, weight.shape[0], int(conv.attrs.get("group", 1)), weight.shape[0]):
            return NoMatch("grouped producer: the gathered rows do not split into one segment per group")
        return GatherOfConv(node, conv, relu, pad, weight, bias, index)

    def rewrite(self, graph: Graph, match: GatherOfConv) -> None:
        node, conv, weight, bias = match.node, match.conv, match.weight, match.bias
        w0 = np.concatenate([weight, np.zeros_like(weight[:1])])
        b0 = np.concatenate([bias, np.zeros_like(bias[:1])])
        index = np.minimum(match.index, weight.shape[0])
        conv.inputs = (conv.inputs[0], graph.const(np.ascontiguousarray(w0[index]), f"{conv.layer}.w"),
                       graph.const(np.ascontiguousarray(b0[index]), f"{conv.layer}.b"))
        graph.replace_uses(node.outputs[0], (match.relu or conv).outputs[0])
        graph.remove(node)
        if match.pad is not None:
            graph.remove(match.pad)
