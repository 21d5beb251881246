"""Group channel pruning: threshold search, structure rules, one-shot clustering."""
from __future__ import annotations

import pytest
import torch

from dsp_deploy.errors import TrainingError
from dsp_deploy.models import create, topology
from dsp_deploy.structure import PRUNED, count_costs, validate_structure
from dsp_deploy.training.clustering import balanced_kmeans, one_shot_assignments
from dsp_deploy.training.pruning import GroupChannelPruner, _cumulative, assignments_from_logits
from dsp_deploy.training.regularizer import prunable_convs


@pytest.fixture(scope="module")
def resnet20() -> tuple:
    torch.manual_seed(0)
    return topology("resnet20"), create("resnet20").state_dict()


def _random_assignments(topo, groups: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s.name: torch.randint(groups, (s.out_channels,), generator=gen) for s in prunable_convs(topo)}


def test_cumulative_share_keeps_the_largest() -> None:
    cum = _cumulative(torch.tensor([[1.0, 3.0, 0.0, 6.0]], dtype=torch.float64))
    assert cum.tolist() == [[0.1, 0.4, 0.0, 1.0]]


@pytest.mark.parametrize("target,metric", [(0.6, "dsp"), (0.3, "total"), (0.85, "dsp")])
def test_search_lands_on_target(resnet20, target: float, metric: str) -> None:
    topo, state = resnet20
    result = GroupChannelPruner(topo, state, _random_assignments(topo, 4), 4).search(target, metric)
    validate_structure(result.structure, topo)
    measured = count_costs(result.structure, topo).reduction_pct(metric)
    assert measured == pytest.approx(result.reduction_pct)
    assert abs(measured - 100 * target) <= 0.5


def test_structure_rules(resnet20) -> None:
    topo, state = resnet20
    structure = GroupChannelPruner(topo, state, _random_assignments(topo, 4), 4).structure(0.5)
    for spec in topo.convs:
        layer = structure.layer(spec.name)
        if spec.role in ("stem", "downsample"):
            assert layer.is_dense and layer.groups == 1
            continue
        assert layer.groups == 4
        for g in range(4):
            if not layer.group_filters(g):
                assert layer.group_inputs[g] == ()  # empty group reads nothing
        if spec.role == "inner":  # filters nobody reads are gone
            nxt = structure.layer(spec.name.replace("conv1", "conv2"))
            assert set(layer.kept_filters) == set(nxt.read_channels)
        else:
            assert PRUNED in layer.filter_groups  # block outputs lose filters too
    # groups of one conv read different input-channel sets
    differing = [l for l in structure.layers if len({c for c in l.group_inputs if c}) > 1]
    assert len(differing) >= 0.8 * len(prunable_convs(topo))


def test_reduction_grows_with_threshold(resnet20) -> None:
    topo, state = resnet20
    pruner = GroupChannelPruner(topo, state, _random_assignments(topo, 2), 2)
    values = [pruner.reduction(beta, "dsp")[0] for beta in (0.0, 0.2, 0.4, 0.6, 0.8)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] > 80


def test_bad_assignment_is_rejected(resnet20) -> None:
    topo, state = resnet20
    assignments = _random_assignments(topo, 4)
    assignments["layer1.0.conv1"] = torch.full((16,), 7)
    with pytest.raises(TrainingError, match="layer1.0.conv1"):
        GroupChannelPruner(topo, state, assignments, 4)


def test_unreachable_target(resnet20) -> None:
    topo, state = resnet20
    with pytest.raises(TrainingError, match="out of reach"):
        GroupChannelPruner(topo, state, _random_assignments(topo, 4), 4).search(0.995, "total")


def test_logits_to_assignment() -> None:
    logits = {"a": torch.tensor([[0.0, 2.0, -1.0], [1.0, 0.0, -2.0]])}
    assert assignments_from_logits(logits)["a"].tolist() == [1, 0, 0]


def test_balanced_kmeans_groups_similar_profiles() -> None:
    # two families of filters reading disjoint channels: clustering must separate them, equal sizes
    profiles = torch.zeros(8, 6, dtype=torch.float64)
    profiles[:4, :3] = 1.0
    profiles[4:, 3:] = 1.0
    profiles += 0.01 * torch.rand(8, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    profiles /= profiles.norm(dim=1, keepdim=True)
    labels = balanced_kmeans(profiles, 2).tolist()
    assert len(set(labels[:4])) == 1 and len(set(labels[4:])) == 1 and labels[0] != labels[4]


def test_one_shot_assignments_are_balanced(resnet20) -> None:
    topo, state = resnet20
    assignments = one_shot_assignments(topo, state, 4)
    for spec in prunable_convs(topo):
        counts = torch.bincount(assignments[spec.name], minlength=4)
        assert int(counts.max()) - int(counts.min()) <= 1, spec.name
