from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, ValueInfo
from dsp_deploy.export.passes import FoldBatchNorm

from .helpers import ops, run, sample


def _conv_bn(shared_output: bool = False) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph([ValueInfo("x", "float32", ("batch", 4, 6, 6))], [ValueInfo("y", "float32", ("batch", 5, 6, 6))])
    conv = g.add("Conv", ["x", g.const(rng.standard_normal((5, 4, 3, 3)).astype(np.float32))], layer="c",
                 attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
    params = [g.const(v.astype(np.float32)) for v in (rng.uniform(0.5, 2, 5), rng.standard_normal(5),
                                                       rng.standard_normal(5), rng.uniform(0.5, 2, 5))]
    bn = g.add("BatchNormalization", [conv.outputs[0], *params], layer="c", attrs={"epsilon": 1e-5})
    relu = g.add("Relu", bn.outputs, output="y" if not shared_output else None)
    if shared_output:
        g.add("Add", [relu.outputs[0], conv.outputs[0]], output="y")
    return g


def test_folds_into_conv_bias_and_keeps_outputs():
    g = _conv_bn()
    x = sample(4)
    before = run(g, x)
    result = FoldBatchNorm().run(g)
    assert result.applied == 1
    assert ops(g) == {"Conv": 1, "Relu": 1}
    assert len(g.nodes[0].inputs) == 3  # bias added
    np.testing.assert_allclose(run(g, x), before, rtol=1e-5, atol=1e-5)


def test_refuses_when_conv_output_is_shared():
    g = _conv_bn(shared_output=True)
    result = FoldBatchNorm().run(g)
    assert result.applied == 0
    assert "other consumers" in next(iter(result.skipped.values()))
    assert ops(g)["BatchNormalization"] == 1
