from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo, index_array
from dsp_deploy.export.passes import RemoveDeadChannels

from .helpers import check_pass, sample


def _graph(reads):
    rng = np.random.default_rng(0)
    g = Graph([ValueInfo("x", "float32", ("batch", 3, 5, 5))], [ValueInfo(f"y{i}", "float32", ("batch", len(r), 5, 5))
                                                                for i, r in enumerate(reads)])
    c = g.add("Conv", ["x", g.const(rng.standard_normal((8, 3, 1, 1)).astype(np.float32)),
                       g.const(rng.standard_normal(8).astype(np.float32))], layer="c", attrs={"kernel_shape": [1, 1]})
    r = g.add("Relu", c.outputs)
    for i, index in enumerate(reads):
        g.add("Gather", [r.outputs[0], g.const(index_array(index))], attrs={"axis": 1}, output=f"y{i}")
    return g


def test_unread_filters_are_removed_and_gathers_renumbered():
    g = _graph([[7, 2], [2, 5, 5]])
    counts = {"Conv": 1, "Relu": 1, "Gather": 2}
    result = check_pass(g, RemoveDeadChannels(), sample(3, 5), counts=counts, rtol=1e-6, atol=1e-6)  # both outputs
    assert result.applied == 1 and result.applied_at == [g.nodes[0].name]
    assert g.consts[g.nodes[0].inputs[1]].shape[0] == 3  # rows 2, 5, 7 survive


def test_all_read_means_nothing_to_do():
    g = _graph([list(range(8))])
    result = check_pass(g, RemoveDeadChannels(), sample(3, 5), counts={"Conv": 1, "Relu": 1, "Gather": 1})
    assert result.applied == 0 and "every output channel" in next(iter(result.skipped.values()))
