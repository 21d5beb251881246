from __future__ import annotations

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import GatherToSlice

from .helpers import check_pass, sample


def _gather(index):
    g = Graph([ValueInfo("x", "float32", ("batch", 8, 4, 4))], [ValueInfo("y", "float32", ("batch", len(index), 4, 4))])
    g.add("Gather", ["x", g.const(index_array(index))], attrs={"axis": 1}, output="y")
    return g


def test_contiguous_run_becomes_slice():
    g = _gather([2, 3, 4, 5])
    result = check_pass(g, GatherToSlice(), sample(8, 4), counts={"Slice": 1}, rtol=0, atol=0)
    assert result.applied == 1 and not result.skipped  # the Slice it made is no Gather left alone


def test_scattered_indices_stay_a_gather():
    g = _gather([2, 4, 5])
    result = check_pass(g, GatherToSlice(), sample(8, 4), counts={"Gather": 1}, rtol=0, atol=0)
    assert "contiguous" in next(iter(result.skipped.values()))
