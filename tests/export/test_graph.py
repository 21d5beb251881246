"""The pass graph's producer/consumer index: right after every kind of edit the passes make
(add before a node, remove, reassign inputs/outputs, replace_uses, prune, copy), and after each
pass of the real lowering pipeline; ``check_index`` notices a stale index."""
from __future__ import annotations

import numpy as np
import pytest

from dsp_deploy.errors import ExportError
from dsp_deploy.export.graph import Graph, Node, ValueInfo


def _chain() -> tuple[Graph, Node, Node, Node]:
    """x -> Relu a -> Relu b -> Add(a, b) -> y."""
    g = Graph([ValueInfo("x", "float32", ("batch", 2))], [ValueInfo("y", "float32", ("batch", 2))])
    a = g.add("Relu", ["x"])
    b = g.add("Relu", a.outputs)
    c = g.add("Add", [a.outputs[0], b.outputs[0]], output="y")
    return g, a, b, c


def test_queries_follow_adds_removes_and_reassignments():
    g, a, b, c = _chain()
    t = a.outputs[0]
    assert g.producer(t) is a and g.consumers(t) == [b, c] and g.single_consumer(b.outputs[0]) is c
    d = g.add("Neg", [t], before=b)  # inserted mid-graph: consumers stay in graph order
    assert g.nodes.index(d) == 1 and g.consumers(t) == [d, b, c]
    b.inputs = [d.outputs[0]]
    assert g.consumers(t) == [d, c] and g.consumers(d.outputs[0]) == [b]
    c.outputs = ["z"]
    assert g.producer("y") is None and g.producer("z") is c
    g.remove(d)
    assert g.consumers(t) == [c] and g.consumers(d.outputs[0]) == [b] and g.producer(d.outputs[0]) is None
    assert d not in g and b in g
    g.check_index()


def test_node_edits_cannot_bypass_the_index():
    g, a, b, _ = _chain()
    with pytest.raises(TypeError):
        b.inputs[0] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        g.nodes.append(a)  # type: ignore[attr-defined]
    with pytest.raises(ExportError, match="in a graph already"):
        g.insert(a)
    with pytest.raises(ExportError, match="not in this graph"):
        g.remove(Node("Relu", ["x"], ["q"]))


def test_replace_uses_keeps_graph_output_names():
    g, a, b, c = _chain()
    g.replace_uses("y", b.outputs[0])  # the output name moves to b, c's output is renamed away
    assert g.producer("y") is b and g.consumers("y") == [c] and c.outputs[0] != "y"  # c: dead, pruned later
    g.check_index()
    h = Graph([ValueInfo("x", "float32", ("batch", 2))], [ValueInfo("y", "float32", ("batch", 2))])
    relu = h.add("Relu", ["x"], output="y")
    h.replace_uses("y", "x")  # a graph input: copied by an Identity
    assert h.producer("y").op == "Identity" and relu.outputs[0] != "y"
    h.check_index()


def test_prune_and_copy():
    g, a, b, c = _chain()
    dead = g.add("Relu", [g.add("Neg", [b.outputs[0]]).outputs[0]])
    g.const(np.zeros(2, np.float32), "unused")
    assert g.prune() == 2 and dead not in g and not g.consts
    assert g.consumers(b.outputs[0]) == [c]
    g.check_index()
    other = g.copy()
    other.remove(other.nodes[-1])
    assert g.producer("y") is c and other.producer("y") is None
    other.check_index()
    g.check_index()
    other.context.structure["c"] = None  # type: ignore[assignment]
    assert "c" not in g.context.structure  # copies do not share the pass context


def test_fresh_names_skip_every_used_name():
    g, a, *_ = _chain()
    taken = {g.fresh("t") for _ in range(3)}
    g.add("Relu", ["x"], output="u_7", name="v_8")
    names = {g.fresh("u") for _ in range(10)} | {g.fresh("v") for _ in range(10)}
    assert not {"u_7", "v_8"} & names and not taken & names


def test_check_index_notices_a_stale_index():
    g, a, *_ = _chain()
    a._inputs = ("elsewhere",)  # behind the graph's back
    with pytest.raises(ExportError, match="out of date"):
        g.check_index()


def test_index_stays_right_through_the_lowering_pipeline():
    """Every pass of a real export (grouped and union lowerings of a tiny DSP ResNet-20, fp16)
    leaves the index equal to one rebuilt from the nodes."""
    from dsp_deploy.checkpoint import build_model
    from dsp_deploy.export.build import build_plain_graph
    from dsp_deploy.export.pipeline import build_passes
    from dsp_deploy.export.planner import forced_plan
    from dsp_deploy.models import topology

    from .helpers import tiny_checkpoint

    ck = tiny_checkpoint("resnet20", groups=3, size=8)
    topo = topology("resnet20", input_size=(8, 8))
    weights = {k: v.detach().numpy() for k, v in build_model(ck).state_dict().items()}
    plain = build_plain_graph(topo, weights, ck.structure, stem_pool=False)
    for mode in ("grouped", "union", "branches"):
        graph = plain.copy()
        for p in build_passes(forced_plan(plain, topo, mode).layers, fp16=True):
            p.run(graph)
            graph.check_index()
