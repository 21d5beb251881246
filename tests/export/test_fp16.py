from __future__ import annotations

import numpy as np

from dsp_deploy.export.passes import CastToFloat16, FoldBatchNorm

from .helpers import check_pass, conv_graph, random_layer, sample


def test_weights_half_interfaces_float():
    layer = random_layer("c", 8, 6, 3, 2, np.random.default_rng(0))
    g = conv_graph(layer)
    FoldBatchNorm().run(g)
    # interfaces stay float32 (check_pass compares dtypes), one Cast in and one out
    check_pass(g, CastToFloat16(), sample(8), counts={"Cast": 2, "Conv": 1, "Relu": 1}, rtol=2e-2, atol=2e-2)
    assert all(v.dtype != np.float32 for v in g.consts.values())
    assert CastToFloat16().run(g).applied == 0  # idempotent
