"""Checkpoint format: round trip, structure applied as masks, safe loading, bad files."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from dsp_deploy.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint
from dsp_deploy.errors import CheckpointError
from dsp_deploy.models import create, topology
from dsp_deploy.structure import PRUNED, dense_structure


def pruned_checkpoint() -> Checkpoint:
    topo = topology("resnet20")
    s = dense_structure(topo)
    layer = s.layer("layer1.0.conv1")
    layer = layer.replace(groups=2, filter_groups=[0] * 7 + [PRUNED] + [1] * 8,
                          group_inputs=[list(range(0, 10)), list(range(6, 16))])
    conv2 = s.layer("layer1.0.conv2")
    conv2 = conv2.replace(group_inputs=[[c for c in range(16) if c != 7]])
    s = s.with_layers({layer.name: layer, conv2.name: conv2})
    torch.manual_seed(0)
    return Checkpoint("resnet20", create("resnet20").state_dict(), s, {}, {"note": "test"})


def test_round_trip_and_masks(tmp_path):
    ck = pruned_checkpoint()
    path = tmp_path / "ck.pt"
    save_checkpoint(path, ck)
    back = load_checkpoint(path)
    assert back.structure == ck.structure and back.metadata["note"] == "test"
    model = load_model(path)
    assert not model.training
    w = model.layer1[0].conv1.weight
    assert torch.all(w[7] == 0) and torch.all(w[8:, :6] == 0) and torch.all(w[:7, 10:] == 0)
    assert torch.all(w[8:, 6:] != 0)
    assert model.layer1[0].bn1.weight[7] == 0 and model.layer1[0].bn1.bias[7] == 0
    # the pruned filter's output is exactly zero after BN
    out = model.layer1[0].bn1(model.layer1[0].conv1(torch.randn(2, 16, 8, 8)))
    assert torch.all(out[:, 7] == 0)


def test_unsafe_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "dsp-deploy/checkpoint", "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_checkpoint(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(plain)


def test_truncated_and_foreign_files(tmp_path):
    ck = pruned_checkpoint()
    good = tmp_path / "good.pt"
    save_checkpoint(good, ck)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(cut)
    sd = tmp_path / "sd.pt"
    torch.save(create("resnet20").state_dict(), sd)
    with pytest.raises(CheckpointError, match="not a dsp-deploy checkpoint"):
        load_checkpoint(sd)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_torchscript_file_is_named(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.trace(create("resnet20").eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    with pytest.raises(CheckpointError, match="TorchScript model.*import-reference"):
        load_checkpoint(path)


def test_architecture_mismatch(tmp_path):
    ck = pruned_checkpoint()
    ck.state_dict = create("resnet32").state_dict()
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, ck)
    with pytest.raises(CheckpointError, match="does not belong to resnet20|expects"):
        load_model(path)
