from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import ComposeGathers, ReorderFilters

from .helpers import ops, run, sample


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
    x = sample(4, 5)
    before = run(g, x)
    assert ReorderFilters().run(g).applied == 1
    assert g.consts[next(n for n in g.nodes if n.op == "Gather").inputs[1]].tolist() == list(range(6))
    ComposeGathers().run(g)
    assert "Gather" not in ops(g)
    np.testing.assert_allclose(run(g, x), before, rtol=1e-6, atol=1e-6)


def test_grouped_rows_stay_in_their_segment():
    g = _graph([2, 0, 5, 3], group=2)
    x = sample(4, 5)
    before = run(g, x)
    ReorderFilters().run(g)
    assert g.consts[next(n for n in g.nodes if n.op == "Gather").inputs[1]].tolist() == [0, 1, 3, 4]
    np.testing.assert_allclose(run(g, x), before, rtol=1e-6, atol=1e-6)


def test_already_ordered():
    result = ReorderFilters().run(_graph([0, 1, 2]))
    assert result.applied == 0 and "already" in next(iter(result.skipped.values()))
