"""The DSP group-lasso regularizer of one conv and its closed-form weight gradient.

For a conv with weight W [F, C, k, k] and an assignment P [G, F] (column f: how much filter f
belongs to each group; soft from Gumbel-softmax or one-hot from argmax):

    N[g, c]  = || P[g, :] * W[:, c, :, :] ||_2          (norm of group g's slice of input channel c)
    S[g]     = ( sum_f sqrt(P[g, f]) )^2                 (size term: the 1/2-quasi-norm of the assignment)
    R(W, P)  = s * sum_g S[g] * sum_c N[g, c]

``s`` is the per-layer scale: k * sqrt(input numel / (16*32*32)) * (G / F)^1.5, with the input
numel taken at a 32x32 reference resolution (what the DSP authors' code profiles with, so the
paper's lambda values transfer to every model). Everything is a plain torch expression, so
autograd also gives dR/dP and the mixed derivative the look-ahead term needs.
"""
from __future__ import annotations

import math

import torch

from dsp_deploy.models.topology import ROLE_DOWNSAMPLE, ROLE_STEM, ConvSpec, Topology

REFERENCE_NUMEL = 16 * 32 * 32  # the DSP code's normaliser: the CIFAR stem output
_EPS = 1e-12


def prunable_convs(topo: Topology) -> list[ConvSpec]:
    """Convs that DSP groups and prunes: all but the stem and the (1x1) downsample convs."""
    return [c for c in topo.convs if c.role not in (ROLE_STEM, ROLE_DOWNSAMPLE)]


def layer_scales(model: str, groups: int, num_classes: int | None = None) -> dict[str, float]:
    """Per-layer scale ``s`` of every prunable conv of ``model`` (see the module docstring)."""
    from dsp_deploy.models import topology

    ref = topology(model, num_classes, (32, 32))
    scales = {}
    for spec in prunable_convs(ref):
        h, w = spec.output_size
        in_numel = spec.in_channels * h * spec.stride * w * spec.stride
        scales[spec.name] = (spec.kernel_size * math.sqrt(in_numel / REFERENCE_NUMEL)
                             * (groups / spec.out_channels) ** 1.5)
    return scales


def _slice_norms(weight: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
    """N[g, c] = ||P[g] * W[:, c]|| for all groups and input channels."""
    sq = weight.pow(2).sum(dim=(2, 3))  # [F, C]
    return (assign.pow(2) @ sq).clamp_min(_EPS).sqrt()  # [G, C]


def size_term(assign: torch.Tensor) -> torch.Tensor:
    """S[g] = (sum_f sqrt(P[g, f]))^2; P is clamped away from 0 so the gradient stays finite."""
    return assign.clamp_min(_EPS).sqrt().sum(dim=1).pow(2)


def regularizer(weight: torch.Tensor, assign: torch.Tensor, scale: float) -> torch.Tensor:
    """R(W, P) of one conv (a scalar tensor, differentiable in both arguments)."""
    return scale * (size_term(assign) * _slice_norms(weight, assign).sum(dim=1)).sum()


def regularizer_grad(weight: torch.Tensor, assign: torch.Tensor, scale: float) -> torch.Tensor:
    """dR/dW in closed form: W[f, c] * s * sum_g S[g] P[g, f]^2 / N[g, c].

    Stays differentiable in ``assign`` (the look-ahead differentiates it with respect to P).
    """
    coef = assign.pow(2).t() @ (size_term(assign)[:, None] / _slice_norms(weight, assign))  # [F, C]
    return scale * coef[:, :, None, None] * weight


def hard_assignment(logits: torch.Tensor) -> torch.Tensor:
    """One-hot [G, F] assignment of every filter to its arg-max group."""
    index = logits.argmax(dim=0, keepdim=True)
    return torch.zeros_like(logits).scatter_(0, index, 1.0)


def soft_assignment(logits: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel-softmax relaxation over groups: softmax(logits / tau + g), g ~ Gumbel(0, 1).

    The noise comes from ``generator`` so every rank of a distributed run draws the same sample.
    """
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).to(logits.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
    return torch.softmax(logits / tau + gumbel, dim=0)
