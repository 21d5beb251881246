"""Import of the DSP authors' checkpoints: the two shipped files and generated ones of other
depths and group counts, checked against the TorchScript originals and the paper's figures."""
from __future__ import annotations

import pytest
import torch

from dsp_deploy.checkpoint import build_model
from dsp_deploy.errors import ReferenceImportError
from dsp_deploy.reference import import_authors_checkpoint
from dsp_deploy.structure import count_costs

from support.authors_format import write_authors_checkpoint

# shared/dsp-reference/README.md
PAPER = {"resnet20_g4.pt": ("resnet20", 4, 63.57, 50.45), "resnet56_g2.pt": ("resnet56", 2, 63.26, 56.24)}


def max_diff(path, checkpoint, batch=3):
    scripted = torch.jit.load(str(path), map_location="cpu")
    x = torch.randn(batch, 3, 32, 32)
    with torch.no_grad():
        return (build_model(checkpoint)(x) - scripted(x)).abs().max().item()


@pytest.mark.parametrize("name", sorted(PAPER))
def test_shipped_checkpoints(reference_dir, name):
    model, groups, flops_pct, params_pct = PAPER[name]
    ck = import_authors_checkpoint(str(reference_dir / name))
    assert (ck.model, ck.structure.max_groups) == (model, groups)
    costs = count_costs(ck.structure)
    assert abs(costs.dsp_flops_reduction_pct - flops_pct) < 0.05
    assert abs(costs.dsp_params_reduction_pct - params_pct) < 0.05
    assert max_diff(reference_dir / name, ck) < 1e-4


@pytest.mark.parametrize("depth, groups", [(20, 3), (56, 4), (32, 2), (20, 2), (56, 3)])
def test_generated_checkpoints_of_other_shapes(tmp_path, depth, groups):
    path = write_authors_checkpoint(str(tmp_path / "a.pt"), depth, groups, seed=depth * 10 + groups)
    ck = import_authors_checkpoint(path)
    assert ck.model == f"resnet{depth}" and ck.structure.max_groups == groups
    assert max_diff(path, ck) < 1e-4


def test_other_width_is_rejected(tmp_path):
    path = write_authors_checkpoint(str(tmp_path / "wide.pt"), 20, 2, width_scale=2)
    with pytest.raises(ReferenceImportError, match="conv_1_3x3.weight.*expected"):
        import_authors_checkpoint(path)


def test_plain_torchscript_is_rejected(tmp_path):
    from dsp_deploy.models import create

    path = tmp_path / "plain.pt"
    torch.jit.trace(create("resnet20").eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    with pytest.raises(ReferenceImportError, match="not a DSP CIFAR ResNet"):
        import_authors_checkpoint(str(path))
