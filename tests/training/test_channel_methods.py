"""Pruning from Scratch and Soft Channel Pruning pieces, and the FLOPs targets of all four methods."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dsp_deploy.baselines import ChannelPruner, L1ChannelPruner
from dsp_deploy.models import create, topology
from dsp_deploy.structure import count_costs
from dsp_deploy.training.pfs import ChannelGates, GateSearchHook, freeze_weights, gate_scores, inner_convs
from dsp_deploy.training.scp import SoftMasks, below_delta, keep_probability, probability_scores
from dsp_deploy.training.search import scp_structure


def test_pfs_gates_learn_while_weights_stay_at_init() -> None:
    torch.manual_seed(0)
    topo = topology("resnet20", 10, (16, 16), in_channels=1)
    model = create("resnet20", 10, in_channels=1, width_multiplier=1.25)
    gates = ChannelGates(model, topo)
    gates.attach(model)
    freeze_weights(model)
    assert gates.gates["layer1__0__conv1"].numel() == 20  # searched on the 1.25x network
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    hook = GateSearchHook(gates, lr=0.01, gamma=0.5, ratio=0.5)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images, labels = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(images), labels)
        sgd.zero_grad()
        loss.backward()
        hook.before_step(model)
        sgd.step()
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert changed and all(k.startswith("pfs_gates.") for k in changed)
    flat = gates.flat().detach()
    assert float(flat.min()) >= 0 and float(flat.max()) <= 1 and float(flat.mean()) < 1
    scores = gate_scores(topo, gates.values())
    assert len(scores[("filter", "layer1.0.conv1")]) == 16  # capped at the model's own width


def test_scp_keep_probability_of_a_known_batchnorm() -> None:
    gamma = torch.tensor([2.0, -1.0, 0.5, 1.0])
    beta = torch.tensor([1.0, -1.0, 0.0, -3.0])
    expected = [0.5 * (1 + math.erf(b / abs(g) / math.sqrt(2))) for g, b in zip(gamma.tolist(), beta.tolist())]
    assert keep_probability(gamma, beta).tolist() == pytest.approx(expected, abs=1e-6)
    assert expected[0] == pytest.approx(0.691462, abs=1e-6) and expected[2] == 0.5
    assert expected[3] == pytest.approx(0.0013499, abs=1e-6)


def test_scp_soft_masks_sample_in_training_and_threshold_in_eval() -> None:
    topo = topology("resnet20")
    model = create("resnet20")
    masks = SoftMasks(model, topo, generator=torch.Generator().manual_seed(0))
    bn = model.layer1[0].bn1
    with torch.no_grad():
        bn.bias[:4] = -10.0  # keep probability ~0: below delta
    out = model.layer1[0].bn1(torch.randn(2, 16, 4, 4))
    assert out.shape == (2, 16, 4, 4)
    bn.eval()
    assert torch.count_nonzero(bn(torch.randn(2, 16, 4, 4))[:, :4]) == 0
    assert set(below_delta(masks.probabilities())["layer1.0.conv1"]) == {0, 1, 2, 3}


def test_delta_threshold_removes_exactly_the_channels_below_it() -> None:
    topo = topology("resnet20")
    state = create("resnet20").state_dict()
    removed = {}
    for i, spec in enumerate(inner_convs(topo)):
        bias = torch.full((spec.out_channels,), 1.0)
        gone = [c for c in range(spec.out_channels) if (c + i) % 3 == 0]
        bias[gone] = -2.0  # P = Phi(-2) = 0.0228 < 0.05; the others Phi(1) = 0.84
        bias[next(c for c in range(spec.out_channels) if c not in gone)] = -1.6  # P = 0.0548: just above delta, stays
        state[f"{spec.bn}.bias"] = bias
        removed[spec.name] = set(gone)
    probs = {s.name: keep_probability(state[f"{s.bn}.weight"], state[f"{s.bn}.bias"]) for s in inner_convs(topo)}
    assert {k: set(v) for k, v in below_delta(probs, 0.05).items()} == removed
    pruner = ChannelPruner(topo, probability_scores(probs), normalize=False, metric="dsp")
    by_delta = [u for u in pruner.units if u.index in removed[u.where]]
    reduction = 1 - pruner.flops_for(by_delta)[0] / pruner.dense_cost()
    structure, extra = scp_structure(topo, state, reduction, "dsp", {}, 0.05)
    assert extra["scp"]["rule"] == "delta"
    for name, gone in removed.items():
        kept = set(structure.layer(name).kept_filters)
        assert kept == set(range(topo.conv(name).out_channels)) - gone


@pytest.mark.parametrize("metric", ["dsp", "total"])
def test_all_four_methods_reach_the_flops_target(metric: str) -> None:
    from dsp_deploy.training.pruning import GroupChannelPruner

    torch.manual_seed(1)
    topo = topology("resnet20", 10, (28, 28), in_channels=1)
    state = create("resnet20", 10, in_channels=1).state_dict()
    for spec in inner_convs(topo):  # SCP: trained-looking BatchNorms
        state[f"{spec.bn}.bias"] = torch.randn(spec.out_channels)
    gates = {s.name: torch.rand(round(s.out_channels * 1.25)) for s in inner_convs(topo)}
    structures = {
        "l1": L1ChannelPruner(topo, state, metric=metric).match_reduction(0.5).structure,
        "pfs": ChannelPruner(topo, gate_scores(topo, gates), normalize=False, metric=metric)
        .match_reduction(0.5).structure,
        "scp": scp_structure(topo, state, 0.5, metric, {}, 0.05)[0],
    }
    from dsp_deploy.training.regularizer import prunable_convs

    assignments = {s.name: torch.arange(s.out_channels) % 2 for s in prunable_convs(topo)}
    structures["dsp"] = GroupChannelPruner(topo, state, assignments, 2).search(0.5, metric).structure
    for method, structure in structures.items():
        reduction = count_costs(structure, topo).reduction_pct(metric)
        assert abs(reduction - 50.0) <= 1.0, (method, reduction)
        assert structure.max_groups == (2 if method == "dsp" else 1)


def test_recipes_carry_each_papers_settings() -> None:
    from pathlib import Path

    from dsp_deploy.training.recipe import load_recipe

    for path in sorted((Path(__file__).resolve().parents[2] / "dsp_deploy" / "recipes").glob("*.json")):
        recipe = load_recipe(path)
        imagenet = recipe["model"] in ("resnet18", "resnet50")
        pfs, scp = recipe["pfs"], recipe["scp"]
        assert (pfs["gate_lr"], pfs["width_multiplier"]) == (0.01, 1.25), path.name
        assert (pfs["gamma"], pfs["epochs"]) == ((0.05, 1) if imagenet else (0.5, 10)), path.name
        assert (scp["tau"], scp["delta"], scp["lr"], scp["weight_decay"]) == (0.5, 0.05, 0.1, 1e-4), path.name
        assert recipe["scp_finetune"]["lr"] == 0.01 and recipe["scp_finetune"]["epochs"] == scp["epochs"]
