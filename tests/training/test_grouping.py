"""Group learning steps on a real (tiny) batch: logits move, weights shrink, runs reproduce."""
from __future__ import annotations

import torch

from dsp_deploy.models import create, topology
from dsp_deploy.training.grouping import GroupLearner
from dsp_deploy.training.regularizer import hard_assignment, regularizer


def _setup(seed: int = 0, lookahead: bool = True) -> tuple:
    torch.manual_seed(seed)
    model = create("resnet20").train()
    learner = GroupLearner(topology("resnet20"), 4, tau=0.5, lam=2e-3, total_steps=10, lookahead=lookahead, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(8, 3, 32, 32, generator=gen)
    labels = torch.randint(10, (8,), generator=gen)
    return model, learner, images, labels


def test_step_moves_logits_and_shrinks_weights() -> None:
    model, learner, images, labels = _setup()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    bn_stats = model.layer1[0].bn1.running_mean.clone()
    stats = learner.after_step(model, images, labels, lr=0.05, step=9)
    assert stats["lambda"] == 2e-3  # last step of the ramp
    moved = [n for n, p in learner.logits.items() if p.abs().sum() > 0]
    assert len(moved) == len(learner.logits)
    params = dict(model.named_parameters())
    for name in learner.logits:
        w0, w1 = before[f"{name}.weight"], params[f"{name}.weight"].detach()
        assert w1.norm() < w0.norm()  # the group lasso pulls weights towards zero
    assert torch.equal(params["conv1.weight"], before["conv1.weight"])  # the stem is not regularized
    assert torch.equal(params["fc.weight"], before["fc.weight"])
    assert torch.equal(model.layer1[0].bn1.running_mean, bn_stats)  # the look-ahead leaves BN stats alone


def test_regularizer_step_decreases_the_regularizer() -> None:
    model, learner, images, labels = _setup()
    name = "layer2.0.conv1"
    weight = dict(model.named_parameters())[f"{name}.weight"]
    hard = hard_assignment(learner.logits[name].detach())
    r0 = float(regularizer(weight.detach(), hard, learner.scales[name]))
    learner._penalize_weights(model, lr=0.05, lam_t=2e-3)
    assert float(regularizer(weight.detach(), hard, learner.scales[name])) < r0


def test_same_seed_same_logits_and_lookahead_matters() -> None:
    results = []
    for lookahead in (True, True, False):
        model, learner, images, labels = _setup(lookahead=lookahead)
        for step in range(3):
            learner.after_step(model, images, labels, lr=0.05, step=step)
        results.append(torch.cat([p.detach().flatten() for p in learner.logits.values()]))
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0], results[2])


def test_state_round_trip() -> None:
    model, learner, images, labels = _setup()
    learner.after_step(model, images, labels, lr=0.05, step=0)
    state = learner.state_dict()
    _, other, _, _ = _setup(seed=1)
    other.load_state_dict(state)
    assert other.step_count == 1
    for name in learner.logits:
        assert torch.equal(other.logits[name], learner.logits[name])
    assert torch.equal(other.generator.get_state(), learner.generator.get_state())
    assert set(learner.assignments()) == set(learner.logits)
