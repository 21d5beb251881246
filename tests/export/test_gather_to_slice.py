from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import GatherToSlice

from .helpers import ops, run, sample


def _gather(index):
    g = Graph([ValueInfo("x", "float32", ("batch", 8, 4, 4))], [ValueInfo("y", "float32", ("batch", len(index), 4, 4))])
    g.add("Gather", ["x", g.const(index_array(index))], attrs={"axis": 1}, output="y")
    return g


def test_contiguous_run_becomes_slice():
    g = _gather([2, 3, 4, 5])
    x = sample(8, 4)
    before = run(g, x)
    assert GatherToSlice().run(g).applied == 1
    assert ops(g) == {"Slice": 1}
    np.testing.assert_array_equal(run(g, x), before)


def test_scattered_indices_stay_a_gather():
    g = _gather([2, 4, 5])
    result = GatherToSlice().run(g)
    assert ops(g) == {"Gather": 1} and "contiguous" in next(iter(result.skipped.values()))
