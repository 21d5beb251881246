"""DPPNet's convolution: pattern masks, the straight-through estimator, attention, the dynamic
kernel, and the FLOPs count of one layer, each checked against hand-computed values."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dsp_deploy.dppnet.costs import dppnet_costs, layer_costs  # noqa: E402
from dsp_deploy.models import create, get_config, list_models, topology  # noqa: E402
from dsp_deploy.models.dpp import DPPConv2d, dpp_convs, freeze_patterns, set_random_patterns  # noqa: E402


def _conv(cin: int = 2, cout: int = 3, patterns: int = 2) -> DPPConv2d:
    torch.manual_seed(0)
    return DPPConv2d(cin, cout, 3, 1, 1, patterns=patterns)


def test_pattern_mask_from_hand_set_thresholds() -> None:
    conv = _conv()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, :, 0, 0] = 1.0   # pattern 0: |W| = 1 at tap (0,0), 0.2 at the centre
        conv.weight[0, :, :, 1, 1] = 0.2
        conv.weight[1, :, :, 2, 2] = 0.6   # pattern 1: |W| = 0.6 at tap (2,2) only
        conv.threshold[0] = torch.tensor([0.1, 0.3, 0.5])  # mean 0.3: keeps 1.0, drops 0.2
        conv.threshold[1] = 0.5                              # keeps 0.6
    mask = conv.pattern_mask()
    expected = torch.zeros(2, 3, 3)
    expected[0, 0, 0] = expected[1, 2, 2] = 1
    assert torch.equal(mask, expected)
    with torch.no_grad():
        conv.threshold[1] = 0.7
    assert conv.pattern_mask()[1].sum() == 0


def test_ste_gradient_reaches_thresholds_and_weights() -> None:
    conv = _conv()
    y = conv(torch.randn(2, 2, 5, 5))
    y.square().sum().backward()
    assert conv.threshold.grad is not None and conv.threshold.grad.abs().sum() > 0
    assert conv.weight.grad.abs().sum() > 0


def test_attention_sums_to_one_over_patterns() -> None:
    conv = _conv(patterns=4)
    attn = conv.attention(torch.randn(5, 2, 4, 4))
    assert attn.shape == (5, 4, 3)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(5, 3))
    assert bool((attn > 0).all())


def test_dynamic_kernel_is_the_hand_computed_mix() -> None:
    conv = _conv().eval()
    x = torch.randn(1, 2, 5, 5)
    with torch.no_grad():
        attn = conv.attention(x)[0]           # (P, O)
        mask = conv.pattern_mask()            # (P, 3, 3)
        kernel = conv.dynamic_kernel(x)[0]    # (O, I, 3, 3)
        for o in range(3):
            expected = attn[0, o] * conv.weight[0, o] * mask[0] + attn[1, o] * conv.weight[1, o] * mask[1]
            torch.testing.assert_close(kernel[o], expected)
        torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, kernel, padding=1))


def test_frozen_masks_zero_weights_and_stop_thresholds() -> None:
    conv = _conv()
    mask = torch.zeros(2, 3, 3)
    mask[0, 1, 1] = mask[1, 0, 1] = 1
    conv.freeze(mask)
    assert torch.equal(conv.pattern_mask(), mask)
    assert float((conv.weight.detach() * (1 - mask[:, None, None])).abs().sum()) == 0
    assert not conv.threshold.requires_grad
    conv(torch.randn(2, 2, 4, 4)).sum().backward()
    assert float((conv.weight.grad * (1 - mask[:, None, None])).abs().sum()) == 0


def test_flops_of_one_layer_by_hand() -> None:
    conv = _conv(cin=4, cout=6, patterns=2)
    mask = torch.zeros(2, 3, 3)
    mask[0, 1, 1] = mask[0, 0, 1] = 1   # pattern 0: 2 taps
    mask[1, 1, 1] = mask[1, 2, 1] = 1   # pattern 1: 2 taps, union {01, 11, 21} = 3
    conv.freeze(mask)
    state = {f"c.{k}": v for k, v in conv.state_dict().items()}
    cost = layer_costs(state, "c", (8, 8))
    hidden = 4 // 4 + 1
    assert cost["union_taps"] == 3 and cost["taps_per_pattern"] == [2, 2]
    assert cost["conv_flops"] == 3 * 6 * 4 * 64
    assert cost["dense_conv_flops"] == 9 * 6 * 4 * 64
    assert cost["attention_flops"] == 4 * hidden + hidden * 2 * 6
    assert cost["aggregation_flops"] == 2 * 6 * 4 * 3


def test_registry_models_put_dpp_in_every_block_3x3() -> None:
    assert {"dppnet-resnet20", "dppnet-resnet56", "dppnet-resnet18", "dppnet-resnet34"} <= set(list_models())
    assert get_config("dppnet-resnet34").is_dppnet and not get_config("resnet34").is_dppnet
    model = create("dppnet-resnet20")
    names = [name for name, _ in dpp_convs(model)]
    assert len(names) == 18 and all(n.startswith("layer") for n in names)
    assert isinstance(model.conv1, torch.nn.Conv2d) and isinstance(model.layer2[0].downsample[0], torch.nn.Conv2d)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert freeze_patterns(model) == 18


def test_random_patterns_hit_the_union_and_costs_add_up() -> None:
    model = create("dppnet-resnet20")
    set_random_patterns(model, taps=3)
    costs = dppnet_costs(model.state_dict(), topology("dppnet-resnet20"))
    assert all(layer["union_taps"] == 3 for layer in costs["layers"])
    assert costs["dpp_conv_reduction_pct"] == pytest.approx(100 * (1 - 3 / 9))
    assert costs["flops"] == (costs["plain_conv_flops"] + costs["fc_flops"] + costs["dpp_conv_flops"]
                              + costs["attention_flops"] + costs["aggregation_flops"])


@pytest.mark.parametrize("name", ["cifar10_resnet20", "cifar10_resnet56", "imagenet_resnet18", "imagenet_resnet34"])
def test_dppnet_recipes_load(name: str) -> None:
    from pathlib import Path

    from dsp_deploy.training.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "dsp_deploy" / "recipes" / f"dppnet_{name}.json")
    assert get_config(recipe["model"]).is_dppnet
    assert recipe["patterns"]["alpha"] == (8e-6 if "imagenet" in name else 1e-4)
    assert recipe["finetune"]["epochs"] == 40
