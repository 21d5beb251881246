"""One-shot grouping of a dense model: filters that rely on the same input channels go together.

Each filter's profile is its input-channel importance ||W[f, c]||^2 normalised to sum to 1; a
balanced k-means (cosine distance, k-means++ start, equal-size groups within one filter)
splits the filters of every prunable conv into G groups. Equal sizes keep the grouped convs
of the exported model regular.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from dsp_deploy.models.topology import Topology
from dsp_deploy.training.regularizer import prunable_convs


def _profiles(weight: torch.Tensor) -> torch.Tensor:
    imp = weight.detach().double().pow(2).sum(dim=(2, 3))
    imp = imp / imp.sum(dim=1, keepdim=True).clamp_min(1e-30)
    return imp / imp.norm(dim=1, keepdim=True).clamp_min(1e-30)  # unit rows: dot = cosine


def _balanced_assign(similarity: torch.Tensor, capacity: int) -> torch.Tensor:
    """Greedy: most similar (filter, group) pairs first, each group takes at most ``capacity``."""
    filters, groups = similarity.shape
    order = torch.argsort(similarity.flatten(), descending=True).tolist()
    assignment = [-1] * filters
    room = [capacity] * groups
    left = filters
    for flat in order:
        f, g = divmod(flat, groups)
        if assignment[f] < 0 and room[g] > 0:
            assignment[f] = g
            room[g] -= 1
            left -= 1
            if not left:
                break
    return torch.tensor(assignment, dtype=torch.long)


def balanced_kmeans(profiles: torch.Tensor, groups: int, *, iterations: int = 15, seed: int = 0) -> torch.Tensor:
    """Group index per row of ``profiles`` (unit vectors), groups of near-equal size."""
    n = profiles.shape[0]
    if groups <= 1 or n <= groups:
        return torch.arange(n) % max(1, groups) if groups > 1 else torch.zeros(n, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    centres = [profiles[int(torch.randint(n, (1,), generator=gen))]]
    for _ in range(1, groups):  # k-means++: next centre far from the chosen ones
        dist = (1 - profiles @ torch.stack(centres).t()).clamp_min(0).min(dim=1).values
        probs = dist / dist.sum() if float(dist.sum()) > 0 else torch.full((n,), 1.0 / n, dtype=dist.dtype)
        centres.append(profiles[int(torch.multinomial(probs.float(), 1, generator=gen))])
    centre = torch.stack(centres)
    capacity = math.ceil(n / groups)
    assignment = _balanced_assign(profiles @ centre.t(), capacity)
    for _ in range(iterations):
        new_centre = torch.zeros_like(centre).index_add_(0, assignment, profiles)
        centre = new_centre / new_centre.norm(dim=1, keepdim=True).clamp_min(1e-30)
        updated = _balanced_assign(profiles @ centre.t(), capacity)
        if torch.equal(updated, assignment):
            break
        assignment = updated
    return assignment


def one_shot_assignments(topo: Topology, state_dict: Mapping[str, torch.Tensor], groups: int,
                         seed: int = 0) -> dict[str, torch.Tensor]:
    """Filter -> group index for every prunable conv of a dense model."""
    return {spec.name: balanced_kmeans(_profiles(state_dict[f"{spec.name}.weight"]), groups, seed=seed)
            for spec in prunable_convs(topo)}
