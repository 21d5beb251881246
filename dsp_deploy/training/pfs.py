"""Pruning from Scratch (Wang et al., AAAI 2020): channel importance learned from random weights.

The searched network is the model widened by `WIDTH` (1.25x). Every inner conv of a residual
block (the channels a block may lose without touching the residual streams, as in the authors'
ResNet gates) gets one gate per output channel, initialised to 1 and multiplied into its
BatchNorm output. The weights stay frozen at their random init; only the gates learn, with Adam
(lr 0.01) on ``cross-entropy + gamma * (mean |gate| - r)^2`` and the gates clamped to [0, 1]
after each step (gamma = 0.5 on CIFAR-size data, 0.05 on ImageNet; r = the kept-FLOPs ratio).

Per-layer channel counts for a FLOPs target then come from one global ranking of the gates
(the shared bisection of `dsp_deploy.baselines.ChannelPruner`); each layer of the model keeps at
most its own width (the structure IR describes sub-networks of the named model, so a layer whose
widened gates would keep more channels keeps all of them). The pruned network is then trained
from scratch.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dsp_deploy.models.topology import ROLE_INNER, Topology

WIDTH = 1.25
GATES_MODULE = "pfs_gates"


def inner_convs(topo: Topology) -> list[Any]:
    """The convs whose output channels the channel-pruning methods gate (block-inner convs)."""
    return [spec for spec in topo.convs if spec.role == ROLE_INNER]


def _key(name: str) -> str:
    return name.replace(".", "__")


class ChannelGates(nn.Module):
    """One gate vector per inner conv, multiplied into the conv's BatchNorm output by forward hooks.
    Registered as a submodule of the model so DistributedDataParallel averages its gradients."""

    def __init__(self, model: nn.Module, topo: Topology) -> None:
        super().__init__()
        modules = dict(model.named_modules())
        self.names = [spec.name for spec in inner_convs(topo)]
        self.bns = {spec.name: spec.bn for spec in inner_convs(topo)}
        self.gates = nn.ParameterDict({_key(n): nn.Parameter(torch.ones(modules[n].out_channels))  # type: ignore[arg-type]
                                       for n in self.names})

    def attach(self, model: nn.Module) -> None:
        """Add the gates to ``model`` (as `GATES_MODULE`) and hook them onto its BatchNorms."""
        model.add_module(GATES_MODULE, self)
        modules = dict(model.named_modules())
        for name in self.names:
            gate = self.gates[_key(name)]
            modules[self.bns[name]].register_forward_hook(
                lambda _m, _i, out, gate=gate: out * gate.view(1, -1, 1, 1))

    def values(self) -> dict[str, torch.Tensor]:
        """Gate values per conv name (detached, on the CPU)."""
        return {n: self.gates[_key(n)].detach().cpu().clone() for n in self.names}

    def flat(self) -> torch.Tensor:
        return torch.cat([self.gates[_key(n)] for n in self.names])


def freeze_weights(model: nn.Module) -> None:
    """Weights (and BN affine parameters) stay at their random init: no gradient for them."""
    for name, param in model.named_parameters():
        if not name.startswith(GATES_MODULE + "."):
            param.requires_grad_(False)


class GateSearchHook:
    """Loop hook of the search: after the loss gradient, add the sparsity term's, take the Adam
    step on the gates, clamp them to [0, 1] and clear their gradients (the loop's SGD then has
    nothing to update: every weight is frozen)."""

    def __init__(self, gates: ChannelGates, *, lr: float, gamma: float, ratio: float) -> None:
        self.gates = gates
        self.gamma = float(gamma)
        self.ratio = float(ratio)
        self.optimizer = torch.optim.Adam(list(gates.parameters()), lr=lr)
        self.last: dict[str, float] = {}

    def before_step(self, model: nn.Module) -> None:
        reg = self.gamma * (self.gates.flat().abs().mean() - self.ratio) ** 2
        reg.backward()
        self.optimizer.step()
        with torch.no_grad():
            for param in self.gates.parameters():
                param.clamp_(0.0, 1.0)
                param.grad = None
        flat = self.gates.flat().detach()
        self.last = {"sparsity_loss": float(reg.detach()), "mean_gate": float(flat.mean()),
                     "zero_gates": float((flat == 0).float().mean())}

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        return dict(self.last)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "gates": self.gates.values()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, value in state["gates"].items():
                self.gates.gates[_key(name)].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])


def gate_scores(topo: Topology, gates: Mapping[str, Any]) -> dict[tuple[str, str], list[float]]:
    """Scores for `ChannelPruner` on the (unwidened) model ``topo``: each inner conv's largest gates
    of the widened search network, as many as the layer has channels, in descending order."""
    scores = {}
    for spec in inner_convs(topo):
        values = sorted((float(v) for v in torch.as_tensor(gates[spec.name]).flatten()), reverse=True)
        scores[("filter", spec.name)] = values[:spec.out_channels]
    return scores
