from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import ComposeGathers, ReorderFilters

from .helpers import check_pass, sample


def _graph(index, group=1):
    rng = np.random.default_rng(0)
    g = Graph([ValueInfo("x", "float32", ("batch", 4, 5, 5))], [ValueInfo("y", "float32", ("batch", len(index), 5, 5))])
    c = g.add("Conv", ["x", g.const(rng.standard_normal((6, 4 // group, 1, 1)).astype(np.float32)),
                       g.const(rng.standard_normal(6).astype(np.float32))], layer="c",
              attrs={"kernel_shape": [1, 1], "group": group})
    r = g.add("Relu", c.outputs)
    g.add("Gather", [r.outputs[0], g.const(index_array(index))], attrs={"axis": 1}, output="y")
    return g


def test_permutation_makes_the_consumer_gather_vanish():
    g = _graph([4, 1, 5, 0, 3, 2])
    counts = {"Conv": 1, "Relu": 1, "Gather": 1}
    assert check_pass(g, ReorderFilters(), sample(4, 5), counts=counts, rtol=1e-6, atol=1e-6).applied == 1
    assert g.consts[next(n for n in g.nodes if n.op == "Gather").inputs[1]].tolist() == list(range(6))
    check_pass(g, ComposeGathers(), sample(4, 5), counts={"Conv": 1, "Relu": 1}, rtol=0, atol=0)  # Gather gone


def test_grouped_rows_stay_in_their_segment():
    g = _graph([2, 0, 5, 3], group=2)
    check_pass(g, ReorderFilters(), sample(4, 5), counts={"Conv": 1, "Relu": 1, "Gather": 1}, rtol=1e-6, atol=1e-6)
    assert g.consts[next(n for n in g.nodes if n.op == "Gather").inputs[1]].tolist() == [0, 1, 3, 4]


def test_already_ordered():
    result = check_pass(_graph([0, 1, 2]), ReorderFilters(), sample(4, 5), counts={"Conv": 1, "Relu": 1, "Gather": 1})
    assert result.applied == 0 and "already" in next(iter(result.skipped.values()))
