"""Bottleneck candidates of the planner, lowered on a tiny ResNet-50: numerically exact in ONNX
Runtime, and the all-inputs conv1 candidate leaves no Gather in front of conv1 or conv2 (only
the one conv3 reads through)."""
from __future__ import annotations

import numpy as np

from dsp_deploy.export.build import build_plain_graph
from dsp_deploy.export.pipeline import lower_graph
from dsp_deploy.export.units import BOTTLENECK_CANDIDATES, basic_candidates, choices_for_unit, find_units
from dsp_deploy.models import topology

from .helpers import run, tiny_checkpoint


def _plain():
    ck = tiny_checkpoint("resnet50", groups=2, size=32, keep=0.4)
    topo = topology("resnet50", input_size=(32, 32))
    from dsp_deploy.checkpoint import build_model

    weights = {k: v.detach().numpy() for k, v in build_model(ck).state_dict().items()}
    return build_plain_graph(topo, weights, ck.structure, stem_pool=True), topo


def test_all_inputs_conv1_candidate_is_exact_and_gather_free():
    plain, topo = _plain()
    structure = plain.context.structure
    unit = next(u for u in find_units(plain, topo) if u.name.endswith((".1", ".2"))
                and structure[f"{u.name}.conv2"].groups == 2 and structure[f"{u.name}.conv1"].groups == 2)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    before = run(plain, x)
    graph = plain.copy()
    lower_graph(graph, choices_for_unit(unit, "all1+grouped16-3x3+aligned", plain))
    conv1, conv2 = (graph.find_layer(f"{unit.name}.conv{i}") for i in (1, 2))
    assert graph.producer(conv1.inputs[0]).op == "Relu"  # the stream itself, no Gather
    assert graph.producer(conv2.inputs[0]) is graph.consumers(conv1.outputs[0])[0]  # conv1 -> Relu -> conv2
    assert conv2.attrs["group"] == 2 and conv1.attrs["group"] == 1
    moves = [n for n in graph.nodes if n.op in ("Gather", "Slice") and n.layer.startswith(unit.name)]
    assert [n.layer for n in moves] == [f"{unit.name}.conv3"]  # only conv3's input gather is left
    np.testing.assert_allclose(run(graph, x), before, rtol=1e-4, atol=1e-4)


def test_every_bottleneck_candidate_is_exact():
    plain, topo = _plain()
    unit = next(u for u in find_units(plain, topo) if u.name == "layer2.0")
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    before = run(plain, x)
    for name in BOTTLENECK_CANDIDATES:
        graph = plain.copy()
        lower_graph(graph, choices_for_unit(unit, name, plain))
        np.testing.assert_allclose(run(graph, x), before, rtol=1e-4, atol=1e-4, err_msg=name)


def test_basic_candidates_at_multiple_8_are_exact_and_all8_moves_no_channels():
    """ResNet-20 G=4 blocks with the AVX2 alignment: every candidate is exact; ``all8`` (conv1 reads
    the whole stream, conv2's input order folded into conv1) leaves no Gather/Slice in the block
    and pads conv1's filters to a multiple of 8; ``grouped8s+union`` runs equal virtual groups
    whose sizes are multiples of 8."""
    from dsp_deploy.checkpoint import build_model

    ck = tiny_checkpoint("resnet20", groups=4, size=16, keep=0.5)
    topo = topology("resnet20", input_size=(16, 16))
    weights = {k: v.detach().numpy() for k, v in build_model(ck).state_dict().items()}
    plain = build_plain_graph(topo, weights, ck.structure, stem_pool=False)
    structure = plain.context.structure
    unit = next(u for u in find_units(plain, topo) if u.name == "layer2.1")
    assert structure["layer2.1.conv1"].groups == 4
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    before = run(plain, x)
    names = set(basic_candidates(8))
    assert {"union8", "all8", "grouped8+union", "grouped8s+union"} <= names and "union16" not in names
    for name in names:
        graph = plain.copy()
        lower_graph(graph, choices_for_unit(unit, name, plain, 8))
        np.testing.assert_allclose(run(graph, x), before, rtol=1e-4, atol=1e-4, err_msg=name)
        conv1 = graph.find_layer("layer2.1.conv1")
        if name == "all8":
            moves = [n for n in graph.nodes if n.op in ("Gather", "Slice", "Pad") and n.layer.startswith("layer2.1")]
            assert moves == [] and graph.producer(conv1.inputs[0]).op == "Relu"
            assert graph.consts[conv1.inputs[1]].shape[0] % 8 == 0
        if name == "grouped8s+union":
            w = graph.consts[conv1.inputs[1]]
            assert w.shape[0] % (8 * conv1.attrs["group"]) == 0 and w.shape[1] % 8 == 0
