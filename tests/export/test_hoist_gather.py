from __future__ import annotations

import numpy as np

from dsp_deploy.export.passes import HoistGather, LowerConv
from dsp_deploy.export.plan import LayerChoice

from .helpers import check_pass, conv_graph, random_layer, sample


def test_restore_gather_moves_above_relu():
    layer = random_layer("c", 8, 6, 3, 2, np.random.default_rng(3), keep=0.5, pruned=0.3)
    g = conv_graph(layer)
    LowerConv({"c": LayerChoice("grouped")}).run(g)
    counts = {"Gather": 2, "Conv": 1, "Relu": 1}  # input and restore Gathers
    assert check_pass(g, HoistGather(), sample(8), counts=counts).applied == 1
    relu = next(n for n in g.nodes if n.op == "Relu")
    assert g.producer(relu.inputs[0]).op == "Conv"  # Conv -> Relu now adjacent (fusable)
    assert g.producer("y").op == "Gather"


def test_not_applied_when_relu_input_is_a_conv():
    layer = random_layer("c", 8, 6, 3, 2, np.random.default_rng(3))
    g = conv_graph(layer)
    result = check_pass(g, HoistGather(), sample(8), counts={"Conv": 1, "Relu": 1})
    assert result.applied == 0 and "not a channel Gather" in next(iter(result.skipped.values()))
