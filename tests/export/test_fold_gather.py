from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import FoldGatherIntoConv

from .helpers import check_pass, sample


def _conv_gather(index, group=1, pad=0, relu=True):
    rng = np.random.default_rng(0)
    g = Graph([ValueInfo("x", "float32", ("batch", 4, 5, 5))], [ValueInfo("y", "float32", ("batch", len(index), 5, 5))])
    w = rng.standard_normal((6, 4 // group, 3, 3)).astype(np.float32)
    t = g.add("Conv", ["x", g.const(w), g.const(rng.standard_normal(6).astype(np.float32))], layer="c",
              attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": group}).outputs[0]
    if relu:
        t = g.add("Relu", [t], layer="c").outputs[0]
    if pad:
        pads = g.const(np.array([0, 0, 0, 0, 0, pad, 0, 0], np.int64))
        t = g.add("Pad", [t, pads], attrs={"mode": "constant"}).outputs[0]
    g.add("Gather", [t, g.const(index_array(index))], attrs={"axis": 1}, output="y")
    return g


def test_rows_are_picked_repeated_and_zeroed():
    g = _conv_gather([5, 0, 0, 6, 2], pad=1)
    result = check_pass(g, FoldGatherIntoConv({"c"}), sample(4, 5), counts={"Conv": 1, "Relu": 1}, rtol=1e-6, atol=1e-6)
    assert result.applied == 1
    assert g.consts[g.nodes[0].inputs[1]].shape[0] == 5


def test_grouped_producer_needs_one_segment_per_group():
    ok = _conv_gather([2, 0, 4, 5], group=2, relu=False)
    assert check_pass(ok, FoldGatherIntoConv(), sample(4, 5), counts={"Conv": 1}, rtol=1e-6, atol=1e-6).applied == 1
    assert ok.nodes[0].attrs["group"] == 2
    bad = _conv_gather([4, 0, 1, 5], group=2, relu=False)
    result = check_pass(bad, FoldGatherIntoConv(), sample(4, 5), counts={"Conv": 1, "Gather": 1})
    assert result.applied == 0 and "segment" in next(iter(result.skipped.values()))


def test_repeated_rows_only_for_layers_the_plan_selects():
    g = _conv_gather([1, 0, 0, 2])  # row 0 twice: folding computes it twice
    result = check_pass(g, FoldGatherIntoConv({"other"}), sample(4, 5), counts={"Conv": 1, "Relu": 1, "Gather": 1})
    assert result.applied == 0 and "not selected" in next(iter(result.skipped.values()))


def test_fold_that_adds_no_rows_needs_no_selection():
    g = _conv_gather([5, 1, 0, 2, 3])  # 5 distinct rows of 6: less work, no Gather
    fold = FoldGatherIntoConv({"other"})
    assert check_pass(g, fold, sample(4, 5), counts={"Conv": 1, "Relu": 1}, rtol=1e-6, atol=1e-6).applied == 1
    assert g.consts[g.nodes[0].inputs[1]].shape[0] == 5


def test_plain_pruned_layer_folds_zero_padding_for_the_next_conv_without_selection():
    """A G=1 (channel-pruned) producer folds a Gather that only adds zero rows (the next conv's
    input padding); repeated computed rows, a group-pruned producer or a Gather that is not a
    conv's input still need the plan's selection."""
    from dsp_deploy.structure import ConvStructure

    def graph(index, layer=None, consumer=True):
        g = _conv_gather(index, pad=1)
        g.context.structure = {"c": layer or ConvStructure.dense("c", 4, 6, 3, 1)}
        if consumer:  # Gather -> 1x1 Conv -> y
            gather = g.nodes[-1]
            gather.outputs = ["gathered"]
            w = np.random.default_rng(1).standard_normal((3, len(index), 1, 1)).astype(np.float32)
            g.add("Conv", ["gathered", g.const(w)], attrs={"kernel_shape": [1, 1]}, output="y")
            g.outputs[0].shape = ("batch", 3, 5, 5)
        return g

    g = graph([5, 1, 6, 0, 6, 2, 3, 4, 6])  # 9 rows from 6: the extra ones read the zero channel
    assert check_pass(g, FoldGatherIntoConv({"other"}), sample(4, 5), counts={"Conv": 2, "Relu": 1}).applied == 1
    assert g.consts[g.nodes[0].inputs[1]].shape[0] == 9
    grouped = ConvStructure("c", 4, 6, 3, 1, 2, (0, 0, 0, 1, 1, 1), ((0, 1, 2, 3),) * 2)
    for g, why, convs in ((graph([5, 1, 1, 0, 6, 2, 3, 4, 6]), "repeat computed rows", 2),
                          (graph([5, 1, 6, 0, 6, 2, 3, 4, 6], grouped), "zero padding", 2),
                          (graph([5, 1, 6, 0, 6, 2, 3, 4, 6], consumer=False), "zero padding", 1)):
        counts = {"Conv": convs, "Relu": 1, "Pad": 1, "Gather": 1}
        result = check_pass(g, FoldGatherIntoConv({"other"}), sample(4, 5), counts=counts)
        assert result.applied == 0 and why in next(iter(result.skipped.values()))
