from __future__ import annotations

import numpy as np
import pytest

from dsp_deploy.export.graph import Graph, ValueInfo
from dsp_deploy.export.passes import FoldBatchNorm
from dsp_deploy.export.passes.fold_batchnorm import ConvBatchNorm

from .helpers import check_pass, sample


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
    result = check_pass(g, FoldBatchNorm(), sample(4), counts={"Conv": 1, "Relu": 1})
    assert result.applied == 1
    assert len(g.nodes[0].inputs) == 3  # bias added


def test_refuses_when_conv_output_is_shared():
    g = _conv_bn(shared_output=True)
    counts = {"Conv": 1, "BatchNormalization": 1, "Relu": 1, "Add": 1}
    result = check_pass(g, FoldBatchNorm(), sample(4), counts=counts)
    assert result.applied == 0
    assert "other consumers" in next(iter(result.skipped.values()))


def test_check_pass_catches_a_wrong_rewrite():
    """The shared check fails a pass that changes the numbers (here: BatchNorm dropped, not folded)."""
    class DropBatchNorm(FoldBatchNorm):
        def rewrite(self, graph: Graph, match: ConvBatchNorm) -> None:
            graph.replace_uses(match.node.outputs[0], match.conv.outputs[0])
            graph.remove(match.node)

    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_pass(_conv_bn(), DropBatchNorm(), sample(4), counts={"Conv": 1, "Relu": 1})
