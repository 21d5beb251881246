"""Model zoo: registry, torchvision-compatible ResNet-50 keys, --weights loading."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsp_deploy.errors import CheckpointError, ModelError
from dsp_deploy.models import create, list_models, topology

KEYS_FILE = Path(__file__).with_name("resnet50_state_dict.txt")


def test_registry_lists_all_models():
    assert {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
            "resnet18", "resnet34", "resnet50", "resnet101"} <= set(list_models())
    with pytest.raises(ModelError, match="unknown model 'vgg16'"):
        create("vgg16")


def test_resnet50_state_dict_matches_torchvision_list():
    expected = []
    for line in KEYS_FILE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            expected.append((key, () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))))
    ours = [(k, tuple(v.shape)) for k, v in create("resnet50").state_dict().items()]
    assert ours == expected


@pytest.mark.parametrize("name, blocks", [("resnet20", 9), ("resnet56", 27), ("resnet110", 54)])
def test_cifar_depths(name, blocks):
    model = create(name)
    assert sum(1 for n, _ in model.named_modules() if n.count(".") == 1 and n.startswith("layer")) == blocks
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50"])
def test_topology_matches_modules(name):
    modules = dict(create(name).named_modules())
    for spec in topology(name).convs:
        conv = modules[spec.name]
        assert (conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0]) == (
            spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride)
        assert spec.bn in modules


def test_weights_file_loads_and_mismatch_is_reported(tmp_path):
    source = create("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    loaded = create("resnet18", weights=str(path))
    assert torch.equal(loaded.fc.weight, source.fc.weight)
    with pytest.raises(ModelError, match="not a resnet34 state_dict"):
        create("resnet34", weights=str(path))
    with pytest.raises(CheckpointError, match="not found"):
        create("resnet18", weights=str(tmp_path / "nope.pth"))
