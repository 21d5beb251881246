"""The DSP regularizer: closed-form weight gradient vs autograd, size term, scales, assignments."""
from __future__ import annotations

import math

import pytest
import torch

from dsp_deploy.models import topology
from dsp_deploy.training import regularizer as reg


@pytest.mark.parametrize("hard", [False, True])
def test_analytic_weight_gradient_matches_autograd(hard: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 5, 3, 3, generator=gen, dtype=torch.float64)
    logits = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    assign = reg.hard_assignment(logits) if hard else torch.softmax(logits, dim=0)
    w = weight.clone().requires_grad_(True)
    reg.regularizer(w, assign, 0.7).backward()
    analytic = reg.regularizer_grad(weight, assign, 0.7)
    assert analytic.shape == weight.shape
    torch.testing.assert_close(analytic, w.grad, rtol=1e-9, atol=1e-12)
    assert analytic.abs().sum() > 0


def test_regularizer_value_by_hand() -> None:
    weight = torch.zeros(2, 2, 1, 1, dtype=torch.float64)
    weight[0, 0] = 3.0
    weight[1, 0] = 4.0
    weight[1, 1] = 2.0
    assign = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)  # both filters in group 0
    # group 0: S = (1 + 1)^2 = 4; channel norms 5 and 2 -> 4 * 7 = 28; group 1 contributes ~0
    assert float(reg.regularizer(weight, assign, 1.0)) == pytest.approx(28.0, rel=1e-5)


def test_assignment_gradient_flows_and_mixed_term_is_nonzero() -> None:
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(8, 4, 3, 3, generator=gen)
    logits = torch.zeros(2, 8, requires_grad=True)
    assign = reg.soft_assignment(logits, 0.5, gen)
    torch.testing.assert_close(assign.sum(0), torch.ones(8))
    adapted = weight - 0.1 * reg.regularizer_grad(weight, assign, 1.0)
    (adapted * torch.randn(adapted.shape, generator=gen)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_size_term_prefers_confident_assignments() -> None:
    uniform = torch.full((4, 16), 0.25)
    hard = reg.hard_assignment(torch.randn(4, 16))
    assert float(reg.size_term(uniform).sum()) > float(reg.size_term(hard).sum())


def test_layer_scales_cover_prunable_convs_only() -> None:
    scales = reg.layer_scales("resnet20", 4)
    names = {c.name for c in reg.prunable_convs(topology("resnet20"))}
    assert set(scales) == names and "conv1" not in scales
    assert not any("downsample" in n for n in scales)
    # layer1.0.conv1: 16 channels at 32x32 -> sqrt(1) * 3 * (4/16)^1.5
    assert scales["layer1.0.conv1"] == pytest.approx(3 * (4 / 16) ** 1.5)
    assert scales["layer3.0.conv1"] == pytest.approx(3 * math.sqrt(32 * 16 * 16 / 16384) * (4 / 64) ** 1.5)
    assert len(reg.layer_scales("resnet50", 2)) == 48
