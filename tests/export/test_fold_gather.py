from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import FoldGatherIntoConv

from .helpers import ops, run, sample


def _conv_gather(index, group=1, pad=0, relu=True):
    rng = np.random.default_rng(0)
    g = Graph([ValueInfo("x", "float32", ("batch", 4, 5, 5))], [ValueInfo("y", "float32", ("batch", len(index), 5, 5))])
    w = rng.standard_normal((6, 4 // group, 3, 3)).astype(np.float32)
    t = g.add("Conv", ["x", g.const(w), g.const(rng.standard_normal(6).astype(np.float32))], layer="c",
              attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": group}).outputs[0]
    if relu:
        t = g.add("Relu", [t], layer="c").outputs[0]
    if pad:
        t = g.add("Pad", [t, g.const(np.array([0, 0, 0, 0, 0, pad, 0, 0], np.int64))], attrs={"mode": "constant"}).outputs[0]
    g.add("Gather", [t, g.const(index_array(index))], attrs={"axis": 1}, output="y")
    return g


def test_rows_are_picked_repeated_and_zeroed():
    g = _conv_gather([5, 0, 0, 6, 2], pad=1)
    x = sample(4, 5)
    before = run(g, x)
    assert FoldGatherIntoConv({"c"}).run(g).applied == 1
    assert ops(g) == {"Conv": 1, "Relu": 1}
    assert g.consts[g.nodes[0].inputs[1]].shape[0] == 5
    np.testing.assert_allclose(run(g, x), before, rtol=1e-6, atol=1e-6)


def test_grouped_producer_needs_one_segment_per_group():
    ok = _conv_gather([2, 0, 4, 5], group=2, relu=False)
    x = sample(4, 5)
    before = run(ok, x)
    assert FoldGatherIntoConv().run(ok).applied == 1
    assert ok.nodes[0].attrs["group"] == 2
    np.testing.assert_allclose(run(ok, x), before, rtol=1e-6, atol=1e-6)
    bad = _conv_gather([4, 0, 1, 5], group=2, relu=False)
    result = FoldGatherIntoConv().run(bad)
    assert result.applied == 0 and "segment" in next(iter(result.skipped.values()))


def test_only_layers_the_plan_selects():
    g = _conv_gather([1, 0])
    result = FoldGatherIntoConv({"other"}).run(g)
    assert result.applied == 0 and "not selected" in next(iter(result.skipped.values()))
