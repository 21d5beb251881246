"""Keep a structure enforced while fine-tuning: pruned conv weights and the BatchNorm affine
parameters of pruned filters stay exactly zero.

Gradients of pruned entries are zeroed before each optimizer step (so momentum never builds
up for them) and the masks are multiplied in again after it (weight decay or rounding cannot
leave anything behind). Masks are built once from the structure IR.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dsp_deploy.models.topology import Topology
from dsp_deploy.structure import ModelStructure
from dsp_deploy.structure.masks import conv_mask, kept_filter_mask


class StructureMasks:
    """Per-parameter float masks of a structure, applied to a model in place."""

    def __init__(self, model: nn.Module, structure: ModelStructure, topo: Topology) -> None:
        params = dict(model.named_parameters())
        self.masks: list[tuple[nn.Parameter, torch.Tensor]] = []
        for layer in structure.layers:
            if layer.is_dense:
                continue
            weight = params[f"{layer.name}.weight"]
            mask = conv_mask(layer).to(weight.dtype)[:, :, None, None].expand_as(weight).contiguous()
            self.masks.append((weight, mask.to(weight.device)))
            kept = kept_filter_mask(layer).to(weight.dtype).to(weight.device)
            bn = topo.conv(layer.name).bn
            for suffix in ("weight", "bias"):
                if f"{bn}.{suffix}" in params:
                    self.masks.append((params[f"{bn}.{suffix}"], kept))

    @torch.no_grad()
    def apply(self) -> None:
        for param, mask in self.masks:
            param.mul_(mask)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for param, mask in self.masks:
            if param.grad is not None:
                param.grad.mul_(mask)


class MaskHook:
    """Loop hook: masked gradients before the step, masked weights after it."""

    def __init__(self, masks: StructureMasks) -> None:
        self.masks = masks

    def before_step(self, model: nn.Module) -> None:
        self.masks.mask_grads()

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        self.masks.apply()
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
