"""Hardware-aligned group channel pruning (``channel_multiple``): per-group kept counts are
multiples of N, the structure stays valid, the FLOPs target is still met, groups unchanged."""
from __future__ import annotations

import json

import pytest
import torch

from dsp_deploy.errors import TrainingError
from dsp_deploy.models import create, topology
from dsp_deploy.structure import PRUNED, count_costs, validate_structure
from dsp_deploy.training.clustering import one_shot_assignments
from dsp_deploy.training.pruning import GroupChannelPruner


def _group_counts(structure) -> list[tuple[str, int, int, int]]:
    """(layer, group, kept filters, kept inputs) of every grouped conv."""
    return [(layer.name, g, len(layer.group_filters(g)), len(layer.group_inputs[g]))
            for layer in structure.layers if layer.groups > 1 for g in range(layer.groups)]


@pytest.fixture(scope="module")
def resnet50_aligned() -> tuple:
    """ResNet-50 (weights only, 64x64: pruning needs no forward), G=2, 70% whole-model target."""
    torch.manual_seed(0)
    topo, state = topology("resnet50", input_size=(64, 64)), create("resnet50").state_dict()
    assignments = one_shot_assignments(topo, state, 2)
    result = GroupChannelPruner(topo, state, assignments, 2, channel_multiple=16).search(0.70, "total")
    return topo, assignments, result


def test_resnet50_counts_are_multiples_of_16(resnet50_aligned) -> None:
    topo, _, result = resnet50_aligned
    counts = _group_counts(result.structure)
    assert len(counts) == 2 * 48  # 16 bottlenecks x 3 grouped convs x G=2
    misaligned = [c for c in counts if c[2] % 16 or c[3] % 16]
    assert not misaligned, misaligned[:4]
    assert all(f > 0 and i > 0 for _, _, f, i in counts)  # random weights: no group dies


def test_resnet50_aligned_is_valid_and_on_target(resnet50_aligned) -> None:
    topo, assignments, result = resnet50_aligned
    validate_structure(result.structure, topo)
    measured = count_costs(result.structure, topo).reduction_pct("total")
    assert measured == pytest.approx(result.reduction_pct)
    assert abs(measured - 70.0) <= 0.5
    for name, assignment in assignments.items():  # the clustered groups are kept, not re-drawn
        layer = result.structure.layer(name)
        kept = [(g, int(a)) for g, a in zip(layer.filter_groups, assignment) if g != PRUNED]
        assert kept and all(g == a for g, a in kept), name
    # the block-out convs still lose filters (the paper's conv3 filter pruning)
    assert any(PRUNED in result.structure.layer(s.name).filter_groups for s in topo.convs if s.role == "block_out")


@pytest.mark.parametrize("multiple,target", [(2, 0.5), (4, 0.6), (4, 0.7)])
def test_resnet20_aligned(multiple: int, target: float) -> None:
    torch.manual_seed(0)
    topo, state = topology("resnet20"), create("resnet20").state_dict()
    pruner = GroupChannelPruner(topo, state, one_shot_assignments(topo, state, 2), 2, channel_multiple=multiple)
    result = pruner.search(target, "dsp")
    validate_structure(result.structure, topo)
    assert abs(count_costs(result.structure, topo).reduction_pct("dsp") - 100 * target) <= 0.5
    assert all(f % multiple == 0 and i % multiple == 0 for _, _, f, i in _group_counts(result.structure))


def test_channel_multiple_off_and_invalid() -> None:
    torch.manual_seed(0)
    topo, state = topology("resnet20"), create("resnet20").state_dict()
    assignments = one_shot_assignments(topo, state, 2)
    plain = GroupChannelPruner(topo, state, assignments, 2).structure(0.4)
    assert GroupChannelPruner(topo, state, assignments, 2, channel_multiple=1).structure(0.4) == plain
    aligned = GroupChannelPruner(topo, state, assignments, 2, channel_multiple=8).structure(0.4)
    assert aligned != plain
    with pytest.raises(TrainingError, match="channel_multiple"):
        GroupChannelPruner(topo, state, assignments, 2, channel_multiple=0)


def test_cli_channel_multiple(cli, cli_ok, tmp_path) -> None:
    from dsp_deploy.checkpoint import dense_checkpoint, load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "dense.pt", dense_checkpoint("resnet20", create("resnet20")))
    proc = cli_ok("prune", "dense.pt", "--groups", "2", "--flops-reduction", "0.6", "--channel-multiple", "4",
                  "--json", "--no-progress", "--out", "P.pt", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["channel_multiple"] == 4 and abs(summary["reduction_pct"] - 60.0) <= 0.5
    structure = load_checkpoint(tmp_path / "P.pt").structure
    assert structure.metadata["channel_multiple"] == 4
    assert all(f % 4 == 0 and i % 4 == 0 for _, _, f, i in _group_counts(structure))
    bad = cli("prune", "dense.pt", "--groups", "2", "--flops-reduction", "0.6", "--channel-multiple", "0",
              "--out", "Q.pt", cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--channel-multiple" in bad.stderr
    assert not (tmp_path / "Q.pt").exists()
