"""Operation-aware Soft Channel Pruning (Kang & Han, ICML 2020): differentiable channel masks
derived from the BatchNorm + ReLU that follow each conv.

A BatchNorm output ``gamma * x_hat + beta`` with ``x_hat ~ N(0, 1)`` is non-zero after the ReLU
with probability ``P = 1 - Phi(-beta / |gamma|)``; that probability is the channel's keep
probability. While training (from scratch), each channel of every block-inner conv is multiplied
by a Gumbel-softmax sample (tau = 0.5) of keep-vs-drop with probabilities (P, 1 - P), and a
sparsity term ``lambda * max(0, E[FLOPs] / dense - (1 - target))^2`` (expected FLOPs from the
keep probabilities) pushes the model toward the FLOPs target. Channels whose keep probability
falls below the CDF threshold delta = 0.05 are removed; the rest is fine-tuned with the
structure fixed. The FLOPs target is then met within 1% by the shared bisection over the
probability ranking (`dsp_deploy.baselines.ChannelPruner`) when the delta rule alone misses it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dsp_deploy.models.topology import Topology
from dsp_deploy.training.pfs import inner_convs

TAU = 0.5
DELTA = 0.05


def keep_probability(bn_weight: torch.Tensor, bn_bias: torch.Tensor) -> torch.Tensor:
    """P(ReLU(BN(x)) != 0) per channel: ``1 - Phi(-beta / |gamma|)`` (differentiable)."""
    z = -bn_bias / bn_weight.abs().clamp_min(1e-8)
    return 1.0 - 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


def below_delta(probabilities: dict[str, torch.Tensor], delta: float = DELTA) -> dict[str, list[int]]:
    """The channels the CDF threshold removes: keep probability strictly below ``delta``."""
    return {name: torch.nonzero(p < delta).flatten().tolist() for name, p in probabilities.items()}


class SoftMasks:
    """Gumbel-softmax keep masks on the BatchNorm outputs of the inner convs (training mode only;
    in eval mode channels below delta are zeroed, the rest pass unchanged)."""

    def __init__(self, model: nn.Module, topo: Topology, *, tau: float = TAU, delta: float = DELTA,
                 generator: torch.Generator | None = None) -> None:
        self.tau, self.delta = float(tau), float(delta)
        self.generator = generator
        modules = dict(model.named_modules())
        self.bns = {spec.name: modules[spec.bn] for spec in inner_convs(topo)}
        for bn in self.bns.values():
            bn.register_forward_hook(self._hook)

    def _hook(self, bn: nn.Module, _inputs: Any, out: torch.Tensor) -> torch.Tensor:
        p = keep_probability(bn.weight, bn.bias).clamp(1e-6, 1 - 1e-6)
        if not bn.training:
            return out * (p >= self.delta).to(out.dtype).view(1, -1, 1, 1)
        logits = torch.stack([p.log(), (1 - p).log()])  # [2, C]
        uniform = torch.rand(logits.shape, generator=self.generator, device=logits.device).clamp(1e-10, 1 - 1e-10)
        sample = torch.softmax((logits - torch.log(-torch.log(uniform))) / self.tau, dim=0)[0]
        return out * sample.view(1, -1, 1, 1)

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {name: keep_probability(bn.weight, bn.bias).detach().cpu() for name, bn in self.bns.items()}


class FlopsTargetHook:
    """Loop hook of the SCP training stage: adds the gradient of the FLOPs-targeted sparsity term
    to the BatchNorm parameters before the SGD step. Expected FLOPs: every inner conv's channels
    scale its own MACs and its consumer's (the next conv of the block) by the mean keep probability."""

    def __init__(self, masks: SoftMasks, topo: Topology, *, lam: float, reduction: float, metric: str) -> None:
        self.masks, self.lam, self.reduction = masks, float(lam), float(reduction)
        consumers = {spec.reads: spec for spec in topo.convs}
        self.terms = {}
        fixed = 0
        for spec in topo.convs:
            if metric == "dsp" and not spec.in_block_body:
                continue
            fixed += spec.dense_macs()
        for name in masks.bns:
            self.terms[name] = topo.conv(name).dense_macs() + consumers[name].dense_macs()
        self.dense = fixed + (topo.fc_macs() if metric == "total" else 0)
        self.fixed = self.dense - sum(self.terms.values())
        self.last: dict[str, float] = {}

    def expected_ratio(self) -> torch.Tensor:
        cost = sum(keep_probability(bn.weight, bn.bias).mean() * self.terms[n] for n, bn in self.masks.bns.items())
        return (cost + self.fixed) / self.dense

    def before_step(self, model: nn.Module) -> None:
        ratio = self.expected_ratio()
        loss = self.lam * torch.relu(ratio - (1.0 - self.reduction)) ** 2
        if loss.requires_grad:
            loss.backward()
        self.last = {"expected_flops_ratio": float(ratio.detach()), "sparsity_loss": float(loss.detach())}

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        return dict(self.last)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.masks.generator.get_state() if self.masks.generator is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("generator") is not None and self.masks.generator is not None:
            self.masks.generator.set_state(state["generator"])


def probability_scores(probabilities: dict[str, torch.Tensor]) -> dict[tuple[str, str], list[float]]:
    """Scores for `ChannelPruner`: each inner conv's keep probabilities."""
    return {("filter", name): [float(v) for v in p] for name, p in probabilities.items()}
