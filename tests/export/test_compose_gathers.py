from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import ComposeGathers

from .helpers import check_pass, sample


def _chain(first, second, pad=0):
    g = Graph([ValueInfo("x", "float32", ("batch", 6, 4, 4))],
              [ValueInfo("y", "float32", ("batch", len(second), 4, 4))])
    t = "x"
    if pad:
        pads = g.const(np.array([0, 0, 0, 0, 0, pad, 0, 0], np.int64))
        t = g.add("Pad", [t, pads], attrs={"mode": "constant"}).outputs[0]
    t = g.add("Gather", [t, g.const(index_array(first))], attrs={"axis": 1}).outputs[0]
    g.add("Gather", [t, g.const(index_array(second))], attrs={"axis": 1}, output="y")
    return g


def test_two_gathers_become_one():
    g = _chain([5, 4, 3, 2, 1, 0], [0, 2, 2, 5])
    check_pass(g, ComposeGathers(), sample(6, 4), counts={"Gather": 1}, rtol=0, atol=0)
    assert g.consts[g.nodes[0].inputs[1]].tolist() == [5, 3, 3, 0]


def test_unused_zero_pad_and_identity_disappear():
    g = _chain([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], pad=1)
    # pad unused, identity map gone (graph input -> output)
    check_pass(g, ComposeGathers(), sample(6, 4), counts={"Identity": 1}, rtol=0, atol=0)


def test_used_zero_channel_keeps_the_pad():
    g = _chain([0, 6, 1], [1, 0], pad=1)
    result = check_pass(g, ComposeGathers(), sample(6, 4), counts={"Pad": 1, "Gather": 1}, rtol=0, atol=0)
    assert result.applied == 1
