"""Planning units (residual blocks), their candidate lowerings, and standalone subgraphs of one
block for measuring a candidate in context.

A candidate maps each conv of a block to a LayerChoice. Measured in context means: a
depthwise 1x1 conv before and after the block, so the block's input and output live in the layout ONNX
Runtime would give them inside the whole network (NCHWc), and boundary reorders are counted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.context import PassContext
from dsp_deploy.export.graph import Graph, Node, ValueInfo
from dsp_deploy.export.plan import LayerChoice
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, ROLE_DOWNSAMPLE, ConvSpec, Topology
from dsp_deploy.structure import ConvStructure

Rule = Callable[[ConvSpec, ConvStructure], LayerChoice]


@dataclass
class Unit:
    """One residual block of the plain graph."""

    name: str
    convs: list[ConvSpec]
    input: str
    output: str
    in_shape: tuple[int, int, int]
    out_channels: int


def find_units(graph: Graph, topo: Topology) -> list[Unit]:
    """The residual blocks of a plain graph (see build.py), in order."""
    units: dict[str, list[ConvSpec]] = {}
    for spec in topo.convs:
        if spec.block:
            units.setdefault(spec.block, []).append(spec)
    found = []
    for name, specs in units.items():
        layers = {s.name for s in specs}
        nodes = [n for n in graph.nodes if n.layer in layers]
        produced = {t for n in nodes for t in n.outputs}
        inputs = {t for n in nodes for t in n.inputs if t not in produced and t not in graph.consts}
        outputs = [t for t in produced if any(t in n.inputs for n in graph.nodes if n.layer not in layers)
                   or graph.is_graph_output(t)]
        first = next(s for s in specs if s.reads.startswith("stream:"))
        size = (first.output_size[0] * first.stride, first.output_size[1] * first.stride)
        (source,) = inputs
        (sink,) = outputs
        found.append(Unit(name, specs, source, sink, (graph.channels(source), *size), graph.channels(sink)))
    return found


def unit_graph(plain: Graph, unit: Unit, *, seed: int = 0) -> Graph:
    """A standalone plain graph of one block (BatchNorms still unfolded) between two depthwise
    1x1 convs: cheap, but they keep the block's edges in ONNX Runtime's NCHWc layout."""
    c, h, w = unit.in_shape
    co = unit.out_channels
    layers = {s.name for s in unit.convs}
    graph = Graph([ValueInfo("x", "float32", ("batch", c, h, w))],
                  [ValueInfo("y", "float32", ("batch", co, None, None))])
    graph.context = PassContext(plain.context.topology, dict(plain.context.structure))
    rng = np.random.default_rng(seed)
    pre = graph.add("Conv", ["x", graph.const(rng.uniform(0.5, 1.5, (c, 1, 1, 1)).astype(np.float32)),
                             graph.const(np.zeros(c, np.float32))], attrs={"kernel_shape": [1, 1], "group": c})
    graph.add("Relu", pre.outputs, output=unit.input)
    for node in (n for n in plain.nodes if n.layer in layers):
        graph.insert(Node(node.op, node.inputs, node.outputs, dict(node.attrs), node.name, node.layer))
        graph.consts.update({t: plain.consts[t] for t in node.inputs if t in plain.consts})
    graph.add("Conv", [unit.output, graph.const(rng.uniform(0.5, 1.5, (co, 1, 1, 1)).astype(np.float32)),
                       graph.const(np.zeros(co, np.float32))], attrs={"kernel_shape": [1, 1], "group": co}, output="y")
    return graph


# -- candidate rules -------------------------------------------------------------------------
def _choice(lowering: str, pad: int = 1, in_pad: int = 1, aligned: bool = False, split: bool = False) -> LayerChoice:
    return LayerChoice(lowering, pad, in_pad, aligned, split)


def _rule(inner: LayerChoice, out: LayerChoice, *, k3: LayerChoice | None = None,
          down: LayerChoice | None = None) -> Rule:
    def rule(spec: ConvSpec, layer: ConvStructure) -> LayerChoice:
        if layer.is_dense and spec.role != ROLE_BLOCK_OUT:
            return LayerChoice()
        if spec.role == ROLE_DOWNSAMPLE:
            if down is not None:
                return down
            return _choice("union", 1, out.in_pad, True) if out.lowering == "union" else out
        if spec.role == ROLE_BLOCK_OUT:
            return out if not layer.is_dense else LayerChoice()
        if k3 is not None and spec.kernel_size == 3:
            return k3
        return inner
    return rule


def dense_rule(spec: ConvSpec, layer: ConvStructure) -> LayerChoice:
    return LayerChoice()


DEFAULT_MULTIPLE = 16  # MLAS's NCHWc block on AVX-512; AVX2 kernels work on 8 floats


def basic_candidates(multiple: int = DEFAULT_MULTIPLE) -> dict[str, Rule]:
    """Candidates for a basic block (two 3x3 convs); ``multiple`` is the target's channel
    alignment, the size padded ("union16", "union8"...) candidates round up to."""
    m = multiple
    return {
        "dense": dense_rule,
        f"union{m}": _rule(_choice("union", m, m, True), _choice("union", 1, m, True)),
        "union": _rule(_choice("union", 1, 1, True), _choice("union", 1, 1, True)),
        f"union{m}in": _rule(_choice("union", 1, m, True), _choice("union", 1, 1, True)),
        f"grouped{m}+union": _rule(_choice("grouped", m), _choice("union", 1, m, True)),
        "grouped+union": _rule(_choice("grouped", 1), _choice("union", 1, 1, True)),
        # conv1 reads the whole stream (zero columns, no Gather and no NCHWc reorders around it)
        f"all{m}": _rule(_choice("union", m, 0, True), _choice("union", 1, m, True)),
        # uneven groups: split into equal virtual groups (layouts.split_slots); the same graph as
        # grouped{m}+union where splitting does not pay (the planner then measures it once)
        f"grouped{m}s+union": _rule(_choice("grouped", m, split=True), _choice("union", 1, m, True)),
    }


def bottleneck_candidates(multiple: int = DEFAULT_MULTIPLE) -> dict[str, Rule]:
    """Candidates for a bottleneck block (1x1, 3x3, 1x1), aligned to ``multiple`` channels."""
    m = multiple
    return {
        "dense": dense_rule,
        "grouped": _rule(_choice("grouped", 1), _choice("grouped", 1)),
        f"grouped{m}": _rule(_choice("grouped", m), _choice("grouped", m)),
        f"grouped{m}-3x3": _rule(_choice("grouped", 1), _choice("grouped", 1), k3=_choice("grouped", m)),
        f"grouped{m}-3x3+aligned": _rule(_choice("grouped", 1), _choice("union", 1, m, True),
                                         k3=_choice("grouped", m), down=_choice("grouped", 1)),
        f"union{m}": _rule(_choice("union", m, m, True), _choice("union", 1, m, True)),
        # conv1 reads the whole stream (no Gather, no reorders) and writes conv2's gathered input
        # layout directly (aligned -> fold-gather-into-conv): pays at 56x56 where the stream is wide
        f"all1+grouped{m}-3x3+aligned": _rule(_choice("union", m, 0, True), _choice("union", 1, m, True),
                                              k3=_choice("grouped", m)),
        f"all1+grouped{m}": _rule(_choice("union", m, 0, True), _choice("grouped", m), k3=_choice("grouped", m)),
        f"grouped{m}s": _rule(_choice("grouped", m, split=True), _choice("grouped", m, split=True)),
    }


BASIC_CANDIDATES: dict[str, Rule] = basic_candidates()
BOTTLENECK_CANDIDATES: dict[str, Rule] = bottleneck_candidates()
FORCED: dict[str, Rule] = {
    "dense": dense_rule,
    "grouped": _rule(_choice("grouped"), _choice("grouped")),
    "branches": _rule(_choice("branches"), _choice("branches")),
    "union": _rule(_choice("union"), _choice("union")),
}


def choices_for_unit(unit: Unit, candidate: str, plain: Graph, multiple: int = DEFAULT_MULTIPLE
                     ) -> dict[str, LayerChoice]:
    """The per-conv choices of one named candidate for ``unit``."""
    rule = candidates_for(unit, multiple)[candidate]
    structure = plain.context.structure
    return {spec.name: rule(spec, structure[spec.name]) for spec in unit.convs}


def candidates_for(unit: Unit, multiple: int = DEFAULT_MULTIPLE) -> dict[str, Rule]:
    """The candidate rules for ``unit`` (bottleneck or basic block) aligned to ``multiple``."""
    bottleneck = len([s for s in unit.convs if s.role != ROLE_DOWNSAMPLE]) == 3
    return bottleneck_candidates(multiple) if bottleneck else basic_candidates(multiple)
