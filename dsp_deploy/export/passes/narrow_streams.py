"""Narrow each residual stream to its live channels: pruned stream channels physically removed.

A stream S (see models/topology.py) is written by its producers P (stem or downsample conv, the
last conv of every block adding into it) and read by its consumers (first convs of blocks, the
next downsample, the classifier); between them only per-channel ops run (BatchNormalization,
Relu, MaxPool, Add, GlobalAveragePool, Flatten). Its live channels are the union of the
producers' kept filters, K = sorted(U_p kept(p)) (``structure.validate.live_channels``). For a
channel c not in K every producer's filter c is pruned: W_p[c] = 0 and its output constant is 0
(folded bias, or gamma = beta = 0 in the BatchNorm), so S[c] = 0 everywhere (Relu(0) = Add(0, 0)
= MaxPool(0) = 0) and a consumer's column c multiplies zeros. Hence, with K in stream order,

    producer:  W_p, b_p, BN_p           ->  W_p[K], b_p[K], BN_p[K]
    consumer:  W_q[:, c, ...]           ->  W_q[:, K, ...]
    fc:        W_fc[:, c]               ->  W_fc[:, K]

computes exactly the same logits with a stream |K| channels wide. A producer that prunes a
channel k in K that another producer keeps keeps its zero row k, so every Add stays aligned.
The structure entries are re-indexed the same way (producers' ``filter_groups`` restricted to K,
consumers' ``group_inputs`` renumbered), so the lowering passes see a model whose streams are
narrower; a G=1 structure whose producers prune alike becomes a plain, narrower ResNet.

The pass anchors on each stream's first producer (stem or downsample conv) and applies only to
an unlowered graph holding the whole stream (every producer a single group=1 Conv).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, NoMatch, Pass, PassResult
from dsp_deploy.structure import ConvStructure, ModelStructure
from dsp_deploy.structure.validate import live_channels

_CHANNELWISE = ("Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Identity", "Add")


@dataclass
class StreamRegion:
    """The nodes of one stream: producers (with their BatchNorms), consumer convs, classifier."""

    name: str
    width: int
    producers: list[Node]
    batchnorms: list[Node] = field(default_factory=list)
    consumers: list[Node] = field(default_factory=list)
    gemms: list[Node] = field(default_factory=list)


def _anchors(graph: Graph) -> dict[str, str]:
    """First producer conv name -> stream name."""
    topo = graph.context.topology
    if topo is None or not graph.context.structure:
        return {}
    return {stream.producers[0]: stream.name for stream in topo.streams if stream.producers}


def _single_conv(graph: Graph, layer: str, role: str) -> Node | NoMatch:
    """The one group=1 Conv of ``layer`` (a stream's ``role``: producer or consumer), or why not."""
    convs = [n for n in graph.nodes if n.layer == layer and n.op == "Conv"]
    if len(convs) != 1:
        return NoMatch(f"{role} '{layer}' is not one Conv in this graph ({len(convs)} found: cut out or already "
                       "lowered)")
    conv = convs[0]
    if conv.attrs.get("group", 1) != 1 or any(graph.const_value(t) is None for t in conv.inputs[1:]):
        return NoMatch(f"{role} '{layer}' is not a group=1 Conv with constant weights")
    return conv


def find_region(graph: Graph, stream_name: str) -> StreamRegion | NoMatch:
    """The stream's nodes, following per-channel ops from its producers; or why that fails."""
    topo = graph.context.topology
    assert topo is not None
    stream = topo.stream(stream_name)
    producers = []
    for name in stream.producers:
        conv = _single_conv(graph, name, "producer")
        if isinstance(conv, NoMatch):
            return conv
        producers.append(conv)
    widths = {int(graph.consts[p.inputs[1]].shape[0]) for p in producers}
    if len(widths) != 1:
        return NoMatch(f"producers write different widths {sorted(widths)}")
    region = StreamRegion(stream.name, widths.pop(), producers)
    readers = set(stream.consumers) - {topo.fc}
    todo = [t for p in reversed(producers) for t in reversed(p.outputs)]  # popped in graph order
    inside = set(todo)
    while todo:
        tensor = todo.pop()
        if graph.is_graph_output(tensor):
            return NoMatch(f"stream tensor '{tensor}' is a graph output")
        for node in graph.consumers(tensor):
            grows = False
            if node.op in _CHANNELWISE or (node.op == "Flatten" and node.attrs.get("axis", 1) == 1
                                            and getattr(graph.producer(tensor), "op", None) == "GlobalAveragePool"):
                grows = True
            elif node.op == "BatchNormalization" and node.inputs[0] == tensor:
                if any(graph.const_value(t) is None for t in node.inputs[1:5]):
                    return NoMatch(f"BatchNormalization '{node.name}' has non-constant parameters")
                region.batchnorms.append(node)
                grows = True
            elif node.op == "Conv" and node.layer in readers and node.inputs[0] == tensor:
                conv = _single_conv(graph, node.layer, "consumer")  # type: ignore[arg-type]
                if isinstance(conv, NoMatch):
                    return conv
                if graph.consts[conv.inputs[1]].shape[1] != region.width:
                    return NoMatch(f"consumer '{node.layer}' does not read {region.width} channels")
                region.consumers.append(node)
            elif node.op == "Gemm" and node.layer == topo.fc and node.inputs[0] == tensor \
                    and not node.attrs.get("transA", 0) and graph.const_value(node.inputs[1]) is not None:
                region.gemms.append(node)
            else:
                return NoMatch(f"'{node.name}' ({node.op}) reads the stream and cannot be narrowed")
            if grows:
                for out in node.outputs:
                    if out not in inside:
                        inside.add(out)
                        todo.append(out)
    for node in graph.nodes:
        if node.op == "Add" and any(t in inside for t in node.inputs) and not all(t in inside for t in node.inputs):
            return NoMatch(f"'{node.name}' adds a tensor from outside the stream")
    found = {n.layer for n in region.consumers} | ({topo.fc} if region.gemms else set())
    missing = sorted(set(stream.consumers) - found)
    if missing:
        return NoMatch(f"consumer '{missing[0]}' does not read the stream directly")
    return region


def live_stream_channels(graph: Graph, stream_name: str) -> list[int]:
    """Sorted live channels of the stream per the (possibly already narrowed) structure."""
    topo = graph.context.topology
    assert topo is not None
    layers = graph.context.structure
    structure = ModelStructure(topo.model, topo.num_classes, topo.input_size,
                               tuple(layers[p] for p in topo.stream(stream_name).producers))
    return sorted(live_channels(structure, topo, f"stream:{stream_name}"))


def _constant_output(graph: Graph, conv: Node, bns: list[Node]) -> np.ndarray:
    """Per filter, what the producer outputs where its weights are zero (bias through BatchNorm)."""
    weight = graph.consts[conv.inputs[1]]
    out = graph.consts[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 else np.zeros(weight.shape[0])
    bn = next((b for b in bns if b.inputs[0] == conv.outputs[0]), None)
    if bn is not None:
        gamma, beta, mean, var = (graph.consts[t].astype(np.float64) for t in bn.inputs[1:5])
        out = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5))) * (out - mean) + beta
    return out


def narrow_out(layer: ConvStructure, keep: list[int]) -> ConvStructure:
    """``layer`` writing only filters ``keep`` (in that order)."""
    return ConvStructure(layer.name, layer.in_channels, len(keep), layer.kernel_size, layer.stride, layer.groups,
                         tuple(layer.filter_groups[f] for f in keep), layer.group_inputs)


def narrow_in(layer: ConvStructure, keep: list[int]) -> ConvStructure:
    """``layer`` reading input channel ``keep[i]`` as channel i (channels outside ``keep`` are
    dropped from its groups: the caller checks that no group with filters reads one)."""
    where = {c: i for i, c in enumerate(keep)}
    inputs = tuple(tuple(where[c] for c in chans if c in where) for chans in layer.group_inputs)
    return ConvStructure(layer.name, len(keep), layer.out_channels, layer.kernel_size, layer.stride, layer.groups,
                         layer.filter_groups, inputs)


@dataclass
class NarrowableStream(Match):
    """``node`` is the first producer of ``stream``, whose nodes are ``region``; ``keep`` its live
    channels (fewer than the stream's width)."""

    stream: str
    region: StreamRegion
    keep: list[int]


class NarrowStreams(Pass[NarrowableStream]):
    """Anchor: each stream's first producer Conv (stem or downsample); see module docstring."""

    name = "narrow-streams"
    ops = ("Conv",)

    def __init__(self) -> None:
        self._anchors: dict[str, str] = {}

    def matches(self, node: Node) -> bool:
        return node.op == "Conv" and node.layer in self._anchors

    def run(self, graph: Graph) -> PassResult:
        self._anchors = _anchors(graph)
        return super().run(graph)

    def check(self, graph: Graph, node: Node) -> NarrowableStream | NoMatch:
        stream = self._anchors[node.layer]  # type: ignore[index]
        region = find_region(graph, stream)
        if isinstance(region, NoMatch):
            return region
        layers = graph.context.structure
        if any(layers[p.layer].out_channels != region.width for p in region.producers):  # type: ignore[index]
            return NoMatch("the structure's widths do not match the graph's")
        keep = live_stream_channels(graph, stream)
        if not keep:
            return NoMatch("no live channel")
        if len(keep) == region.width:
            return NoMatch(f"every channel of stream '{stream}' is live")
        dead = np.setdiff1d(np.arange(region.width), keep)
        for conv in region.producers:
            weight = graph.consts[conv.inputs[1]]
            if np.any(weight[dead]) or np.any(_constant_output(graph, conv, region.batchnorms)[dead]):
                return NoMatch(f"producer '{conv.layer}' has non-zero weights or bias in channels pruned by the "
                               "structure")
        kept = set(keep)
        for conv in region.consumers:
            if not set(layers[conv.layer].read_channels) <= kept:  # type: ignore[index]
                return NoMatch(f"consumer '{conv.layer}' reads a channel no producer writes")
        return NarrowableStream(node, stream, region, keep)

    def rewrite(self, graph: Graph, match: NarrowableStream) -> None:
        region, keep = match.region, match.keep
        rows = np.asarray(keep, np.int64)
        layers = graph.context.structure
        def take(tensor: str, axis: int, hint: str) -> str:
            return graph.const(np.ascontiguousarray(np.take(graph.consts[tensor], rows, axis=axis)), hint)

        for conv in region.producers:
            conv.inputs = (conv.inputs[0], *[take(t, 0, f"{conv.layer}.{i}") for i, t in enumerate(conv.inputs[1:])])
            layers[conv.layer] = narrow_out(layers[conv.layer], keep)  # type: ignore[index]
        for bn in region.batchnorms:
            bn.inputs = (bn.inputs[0], *[take(t, 0, f"{bn.name}.{i}") for i, t in enumerate(bn.inputs[1:5])],
                         *bn.inputs[5:])
        for conv in region.consumers:
            conv.inputs = (conv.inputs[0], take(conv.inputs[1], 1, f"{conv.layer}.w"), *conv.inputs[2:])
            layers[conv.layer] = narrow_in(layers[conv.layer], keep)  # type: ignore[index]
        for gemm in region.gemms:
            axis = 1 if gemm.attrs.get("transB", 0) else 0
            gemm.inputs = (gemm.inputs[0], take(gemm.inputs[1], axis, f"{gemm.layer}.w"), *gemm.inputs[2:])
        graph.context.narrowed[match.stream] = (region.width, len(keep))
