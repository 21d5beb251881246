from __future__ import annotations

import numpy as np

from dsp_deploy.export.passes import CastToFloat16, FoldBatchNorm

from .helpers import conv_graph, ops, random_layer, run, sample


def test_weights_half_interfaces_float():
    layer = random_layer("c", 8, 6, 3, 2, np.random.default_rng(0))
    g = conv_graph(layer)
    FoldBatchNorm().run(g)
    x = sample(8)
    before = run(g, x)
    CastToFloat16().run(g)
    assert ops(g)["Cast"] == 2
    assert all(v.dtype != np.float32 for v in g.consts.values())
    out = run(g, x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, before, rtol=2e-2, atol=2e-2)
    assert CastToFloat16().run(g).applied == 0  # idempotent
