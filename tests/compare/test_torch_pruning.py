"""Torch-Pruning baseline: MACs counted like CostReport, matched within 1%, plain ONNX export runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dsp_deploy.baselines import torch_pruning as tpb
from dsp_deploy.models import create, topology
from dsp_deploy.structure import count_costs, dense_structure

pytest.importorskip("torch_pruning")


@pytest.mark.parametrize("name, shape", [("resnet20", (3, 32, 32)), ("resnet50", (3, 224, 224))])
def test_hook_count_equals_cost_report(name: str, shape: tuple[int, ...]) -> None:
    costs = count_costs(dense_structure(topology(name)))
    assert tpb.count_macs_params(create(name), shape) == (costs.flops, costs.params)


def test_prune_to_flops_and_export(tmp_path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    dense = create("resnet20").eval()
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    target = int(0.45 * count_costs(dense_structure(topology("resnet20"))).flops)
    result = tpb.prune_to_flops(dense, target, (3, 32, 32))
    assert abs(result.flops - target) <= 0.01 * target
    assert tpb.count_macs_params(result.model, (3, 32, 32))[0] == result.flops
    assert all(torch.equal(v, dense.state_dict()[k]) for k, v in before.items()), "dense model was modified"
    assert result.model.fc.in_features < 64  # the residual stream got narrower
    out = tmp_path / "tp.onnx"
    tpb.export_plain_onnx(result.model, out, (3, 32, 32))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = result.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], ref, atol=1e-4, rtol=1e-4)
