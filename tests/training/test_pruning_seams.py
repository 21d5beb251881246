"""The pruning seams shared by DSP and the channel baselines: importance criteria by name and the
one target bisection (`dsp_deploy.pruning`)."""
from __future__ import annotations

import pytest
import torch

from dsp_deploy.baselines import L1ChannelPruner
from dsp_deploy.errors import UsageError
from dsp_deploy.models import create, topology
from dsp_deploy.pruning import CRITERIA, Criterion, bisect_threshold, get_criterion, register_criterion
from dsp_deploy.training.common import structure_fingerprint
from dsp_deploy.training.pruning import GroupChannelPruner
from dsp_deploy.training.regularizer import prunable_convs

# Structures of the pruners before the criterion seam existed (seed 0, resnet20, torch 2.13 CPU):
# DSP G=4 at the threshold its 60% (dsp) search found, L1 with the 134 channels of its 50% match.
OLD_DSP_BETA, OLD_DSP_SHA = 0.4171142578125, "9f1336831f210b5b3ca29d87e78b271b24b43805995f353d90f9e45d687732e2"
OLD_L1_REMOVED, OLD_L1_SHA = 134, "f5b022e37b6aad02ae952810f20d91174913cf5092f8a88f243f61f2c6ccb895"


@pytest.fixture(scope="module")
def resnet20() -> tuple:
    torch.manual_seed(0)
    topo, state = topology("resnet20"), create("resnet20").state_dict()
    gen = torch.Generator().manual_seed(0)
    assignments = {s.name: torch.randint(4, (s.out_channels,), generator=gen) for s in prunable_convs(topo)}
    return topo, state, assignments


def _kept(structure) -> dict:
    return {layer.name: (tuple(layer.filter_groups), tuple(map(tuple, layer.group_inputs)))
            for layer in structure.layers}


def test_default_criteria_reproduce_the_old_structures(resnet20) -> None:
    topo, state, assignments = resnet20
    dsp = GroupChannelPruner(topo, state, assignments, 4).structure(OLD_DSP_BETA)
    assert structure_fingerprint(dsp) == OLD_DSP_SHA
    assert GroupChannelPruner(topo, state, assignments, 4, criterion="l2sq").structure(OLD_DSP_BETA) == dsp
    l1 = L1ChannelPruner(topo, state)
    assert structure_fingerprint(l1.structure_for(l1.units[:OLD_L1_REMOVED])) == OLD_L1_SHA


def test_another_criterion_keeps_other_channels(resnet20) -> None:
    topo, state, assignments = resnet20
    default = GroupChannelPruner(topo, state, assignments, 4).structure(OLD_DSP_BETA)
    by_l1 = GroupChannelPruner(topo, state, assignments, 4, criterion="l1").structure(OLD_DSP_BETA)
    assert _kept(by_l1) != _kept(default)
    l1, l2 = L1ChannelPruner(topo, state), L1ChannelPruner(topo, state, criterion=get_criterion("l2sq"))
    assert [(u.where, u.index) for u in l1.units] != [(u.where, u.index) for u in l2.units]


def test_registered_criterion_is_selectable_by_name(resnet20) -> None:
    topo, state, assignments = resnet20
    # the opposite of l2sq: the weakest weights rate highest, so other filters survive
    inverse = Criterion("test-inverse", lambda w: 1.0 / (1e-12 + w.detach().double().pow(2).sum(dim=(2, 3))),
                        lambda w: 1.0 / (1e-12 + w.detach().double().pow(2).flatten(1).sum(dim=1)))
    register_criterion(inverse)
    try:
        with pytest.raises(UsageError, match="already registered"):
            register_criterion(inverse)
        pruned = GroupChannelPruner(topo, state, assignments, 4, criterion="test-inverse").structure(0.3)
        default = GroupChannelPruner(topo, state, assignments, 4).structure(0.3)
        assert _kept(pruned) != _kept(default)
    finally:
        CRITERIA.pop("test-inverse")
    with pytest.raises(UsageError, match="criterion must be one of l1, l2sq, not 'nope'"):
        GroupChannelPruner(topo, state, assignments, 4, criterion="nope")


@pytest.mark.parametrize("threshold", [0, 1, 17, 63, 64])
def test_integer_bisection_finds_the_smallest_fitting_knob(threshold: int) -> None:
    seen: list[float] = []
    knob, result = bisect_threshold(lambda n: n, lambda n: n >= threshold, 0, 64, integer=True,
                                    on_probe=lambda n, _: seen.append(n))
    assert knob == threshold and len(seen) <= 7
    assert result == (threshold if threshold < 64 else None)  # hi is assumed to fit, never probed


def test_float_bisection_resolution_stop_and_no_fit() -> None:
    knob, result = bisect_threshold(lambda b: b, lambda b: b >= 0.3, 0.0, 1.0, iterations=60, resolution=1e-6)
    assert 0.3 <= knob < 0.3 + 1e-6 and result == knob
    probes: list[float] = []
    bisect_threshold(lambda b: b, lambda b: b >= 0.3, 0.0, 1.0, iterations=60, stop=lambda b: abs(b - 0.3) < 0.1,
                     on_probe=lambda b, _: probes.append(b))
    assert probes == [0.5, 0.25]  # 0.25 is within 0.1 of the goal: stop
    assert bisect_threshold(lambda b: b, lambda b: False, 0.0, 1.0, iterations=5) == (1.0, None)
