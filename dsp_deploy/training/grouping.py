"""Differentiable group learning (DSP): learnable group logits per prunable conv, the Gumbel
soft assignment, the look-ahead update of the logits and the regularizer step on the weights.

One training step (after the ordinary SGD step on the loss, as in the paper):

1. sample a soft assignment P = softmax(logits / tau + Gumbel noise) for every conv;
2. look-ahead: W' = W - lr * lambda_t * dR/dW(W, P) (closed form, differentiable in P), then
   J = loss(W') + lambda_t * R(W', P). dJ/dlogits holds the direct term dR/dP and the
   second-order term (the loss and regularizer gradients at W' times d^2R / dW dP); Adam
   (lr 1e-3, betas 0.9/0.999) takes the step. Gradients are averaged over ranks.
3. weight step: W <- W - lr * lambda_t * dR/dW(W, hard P), hard P = arg-max of the new logits.

lambda_t ramps linearly from lambda/T to lambda over the T steps of the run.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dsp_deploy.models.topology import Topology
from dsp_deploy.training import regularizer as reg
from dsp_deploy.training.distributed import DistContext

log = logging.getLogger(__name__)


class GroupLearner:
    """Group logits of every prunable conv plus their optimizer and noise generator."""

    def __init__(self, topo: Topology, groups: int, *, tau: float, lam: float, total_steps: int,
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), lookahead: bool = True,
                 seed: int = 0, dist: DistContext | None = None, device: str | torch.device = "cpu") -> None:
        self.groups = groups
        self.tau = tau
        self.lam = lam
        self.total_steps = max(1, total_steps)
        self.lookahead = lookahead
        self.dist = dist
        self.specs = reg.prunable_convs(topo)
        self.scales = reg.layer_scales(topo.model, groups, topo.num_classes)
        self.logits = {s.name: nn.Parameter(torch.zeros(groups, s.out_channels, device=device)) for s in self.specs}
        self.optimizer = torch.optim.Adam(list(self.logits.values()), lr=lr, betas=betas, eps=1e-12)
        self.generator = torch.Generator().manual_seed(seed)  # same seed on every rank: same Gumbel noise
        self.step_count = 0

    # -- schedule -------------------------------------------------------------------------------
    def lam_at(self, step: int) -> float:
        """The ramped regularization strength lambda_t at global step ``step``."""
        return self.lam * min(1.0, (step + 1) / self.total_steps)

    # -- one step -------------------------------------------------------------------------------
    def before_step(self, model: nn.Module) -> None:
        return None

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        """Logit update (look-ahead) then the regularizer step on the weights; returns stats."""
        lam_t = self.lam_at(step)
        objective = self._update_logits(model, images, labels, lr, lam_t, nn.functional.cross_entropy)
        penalty = self._penalize_weights(model, lr, lam_t)
        self.step_count = step + 1
        return {"lambda": lam_t, "group_objective": objective, "regularizer": penalty}

    def _update_logits(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                       lam_t: float, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        convs = dict(model.named_modules())
        soft = {n: reg.soft_assignment(p, self.tau, self.generator) for n, p in self.logits.items()}
        adapted = {}
        total_reg = images.new_zeros(())
        for name, assign in soft.items():
            weight = convs[name].weight.detach()
            step = lr * lam_t * reg.regularizer_grad(weight, assign, self.scales[name])
            adapted[name] = weight - step
            total_reg = total_reg + reg.regularizer(adapted[name], assign, self.scales[name])
        objective = lam_t * total_reg
        if self.lookahead:
            tensors = {k: v.detach() for k, v in model.named_parameters()}
            tensors.update({f"{n}.weight": w for n, w in adapted.items()})
            tensors.update({k: v.detach().clone() for k, v in model.named_buffers()})  # keep BN stats untouched
            outputs = torch.func.functional_call(model, tensors, (images,))
            objective = objective + criterion(outputs, labels)
        self.optimizer.zero_grad(set_to_none=False)
        objective.backward()
        if self.dist is not None and self.dist.world_size > 1:
            self.dist.average_([p.grad for p in self.logits.values()])
        self.optimizer.step()
        return float(objective.detach())

    @torch.no_grad()
    def _penalize_weights(self, model: nn.Module, lr: float, lam_t: float) -> float:
        convs = dict(model.named_modules())
        total = 0.0
        for name, logits in self.logits.items():
            weight = convs[name].weight
            hard = reg.hard_assignment(logits)
            total += float(reg.regularizer(weight, hard, self.scales[name]))
            weight.sub_(lr * lam_t * reg.regularizer_grad(weight, hard, self.scales[name]))
        return total

    # -- views and persistence ------------------------------------------------------------------
    def assignments(self) -> dict[str, torch.Tensor]:
        """Hard filter -> group index per conv (arg-max of the logits)."""
        return {n: p.detach().argmax(dim=0).cpu() for n, p in self.logits.items()}

    def logits_cpu(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.logits.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"logits": self.logits_cpu(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "step": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, value in state["logits"].items():
                self.logits[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step_count = int(state["step"])

    def sync(self) -> None:
        """Make every rank hold rank 0's logits (guards against float drift in long runs)."""
        if self.dist is not None and self.dist.world_size > 1:
            self.dist.broadcast_([p.data for p in self.logits.values()])
