"""Pluggable weight-importance criteria for pruning, selectable by name.

A criterion rates a conv weight ``[F, C, kh, kw]`` two ways: ``connections`` gives one score per
(filter, input channel) pair ``[F, C]`` (DSP sums it over a group's filters to rate the group's
input channels) and ``filters`` one score per filter ``[F]`` (DSP's block-output filter pruning,
the channel baselines' units). Scores are float64 and non-negative; larger = more important.

Shipped: ``l2sq`` (squared L2 energy, DSP's default) and ``l1`` (L1 norm, the L1-channel
baseline's default, Li et al. 2017). A new criterion is a `Criterion` added with
`register_criterion`; every pruner that takes ``criterion=NAME`` sees it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsp_deploy.errors import UsageError

if TYPE_CHECKING:
    import torch

Scorer = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Criterion:
    """A named importance criterion: per-connection ``[F, C]`` and per-filter ``[F]`` scores."""

    name: str
    connections: Scorer
    filters: Scorer
    description: str = ""


def _l2sq_connections(weight: "torch.Tensor") -> "torch.Tensor":
    return weight.detach().double().pow(2).sum(dim=(2, 3))


def _l2sq_filters(weight: "torch.Tensor") -> "torch.Tensor":
    return _l2sq_connections(weight).sum(dim=1)


def _l1_connections(weight: "torch.Tensor") -> "torch.Tensor":
    return weight.detach().abs().double().sum(dim=(2, 3))


def _l1_filters(weight: "torch.Tensor") -> "torch.Tensor":
    return weight.detach().abs().double().flatten(1).sum(dim=1)


CRITERIA: dict[str, Criterion] = {}
"""Registered criteria by name."""


def register_criterion(criterion: Criterion) -> Criterion:
    """Make ``criterion`` selectable by its name (UsageError if the name is taken)."""
    if criterion.name in CRITERIA:
        raise UsageError(f"an importance criterion named '{criterion.name}' is already registered")
    CRITERIA[criterion.name] = criterion
    return criterion


def get_criterion(criterion: str | Criterion) -> Criterion:
    """The criterion of that name (a `Criterion` passes through); UsageError naming the choices."""
    if isinstance(criterion, Criterion):
        return criterion
    try:
        return CRITERIA[criterion]
    except KeyError:
        raise UsageError(f"criterion must be one of {', '.join(sorted(CRITERIA))}, not '{criterion}'") from None


L2SQ = register_criterion(Criterion("l2sq", _l2sq_connections, _l2sq_filters,
                                    "squared L2 norm (energy) of the weights: DSP's group pruning"))
L1 = register_criterion(Criterion("l1", _l1_connections, _l1_filters,
                                  "L1 norm of the weights: the L1-channel baseline (Li et al. 2017)"))
