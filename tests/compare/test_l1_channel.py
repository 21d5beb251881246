"""L1 channel pruning in the structure IR: G=1, residual coupling, FLOPs matched by bisection."""
from __future__ import annotations

import math

import pytest
import torch

from dsp_deploy.baselines import L1ChannelPruner, l1_channel_prune
from dsp_deploy.errors import TrainingError
from dsp_deploy.models import create, topology
from dsp_deploy.structure import PRUNED, count_costs, dense_structure, validate_structure


def dense_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return create(name).state_dict()


@pytest.mark.parametrize("name, fraction", [("resnet20", 0.4), ("resnet20", 0.63), ("resnet56", 0.37),
                                            ("resnet50", 0.5)])
def test_matches_flops_within_one_percent(name: str, fraction: float) -> None:
    topo = topology(name)
    dense = count_costs(dense_structure(topo), topo).flops
    target = int(dense * fraction)
    result = l1_channel_prune(topo, dense_state(name), target)
    costs = count_costs(result.structure, topo)
    assert costs.flops == result.flops
    assert abs(costs.flops - target) <= 0.01 * target
    assert all(layer.groups == 1 for layer in result.structure.layers)
    validate_structure(result.structure, topo)


def test_stream_channels_pruned_jointly_and_classifier_shrinks() -> None:
    topo = topology("resnet20")
    dense = count_costs(dense_structure(topo), topo).flops
    result = l1_channel_prune(topo, dense_state("resnet20"), int(0.4 * dense))
    structure = result.structure
    narrowed = 0
    for stream in topo.streams:
        kept = [set(structure.layer(p).kept_filters) for p in stream.producers]
        assert all(k == kept[0] for k in kept), f"producers of {stream.name} keep different channels"
        for consumer in stream.consumers:
            if consumer != "fc":
                assert set(structure.layer(consumer).read_channels) <= kept[0]
        narrowed += len(kept[0]) < stream.channels
    assert narrowed >= 1
    last = topo.streams[-1]
    fc_in = len(structure.layer(last.producers[0]).kept_filters)
    conv_macs = sum(l.macs for l in count_costs(structure, topo).layers)
    assert result.flops == conv_macs + fc_in * topo.num_classes < conv_macs + last.channels * topo.num_classes


def test_inner_only_keeps_streams_and_min_keep() -> None:
    topo = topology("resnet56")
    state = dense_state("resnet56", seed=3)
    pruner = L1ChannelPruner(topo, state, prune_streams=False, min_keep=0.25)
    dense = count_costs(pruner.base, topo).flops
    result = pruner.match_flops(int(0.55 * dense))
    for stream in topo.streams:
        for producer in stream.producers:
            assert len(result.structure.layer(producer).kept_filters) == stream.channels
    for spec in topo.convs:
        layer = result.structure.layer(spec.name)
        assert len(layer.kept_filters) >= math.ceil(0.25 * spec.out_channels)


def test_least_important_filters_go_first() -> None:
    topo = topology("resnet20")
    state = dense_state("resnet20")
    weight = state["layer2.1.conv1.weight"]
    weight[5].mul_(1e-3)  # filter 5 becomes by far the least important of its layer
    result = l1_channel_prune(topo, state, int(0.9 * count_costs(dense_structure(topo), topo).flops))
    assert result.structure.layer("layer2.1.conv1").filter_groups[5] == PRUNED


def test_unreachable_target_is_an_error() -> None:
    topo = topology("resnet20")
    with pytest.raises(TrainingError, match="cannot reach"):
        l1_channel_prune(topo, dense_state("resnet20"), 1000)
    with pytest.raises(TrainingError, match="outside"):
        l1_channel_prune(topo, dense_state("resnet20"), 10**12)


def test_inner_only_export_removes_channels_physically(tmp_path) -> None:
    """Exported with our exporter (union lowering), the kept channels are real conv widths: no Gather,
    and the graph executes exactly the structure's MACs."""
    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.compare.onnx_cost import onnx_costs
    from dsp_deploy.export import export_onnx

    topo = topology("resnet20")
    state = dense_state("resnet20")
    result = L1ChannelPruner(topo, state, prune_streams=False).match_flops(
        int(0.5 * count_costs(dense_structure(topo), topo).flops))
    out = tmp_path / "l1.onnx"
    export_onnx(Checkpoint("resnet20", state, result.structure), out, lowering="union")
    macs, moves = onnx_costs(out)
    assert "Gather" not in moves and "Pad" not in moves
    assert macs == result.flops


def test_aligned_pruning_keeps_channel_counts_in_the_multiple() -> None:
    """`align(8)`: every pruned layer and stream keeps a multiple of 8 channels (rounded up from what
    the unaligned removal would keep), and removing more units never keeps more channels."""
    topo = topology("resnet56")
    pruner = L1ChannelPruner(topo, dense_state("resnet56"))
    half = len(pruner.units) // 2
    loose = pruner.structure_for(pruner.units[:half])
    pruner.align(8)
    aligned = pruner.structure_for(pruner.units[:half])
    kept = {layer.name: len(layer.kept_filters) for layer in aligned.layers}
    widths = {spec.name: spec.out_channels for spec in topo.convs}
    assert any(n < widths[name] for name, n in kept.items())  # something was pruned
    assert all(n % 8 == 0 for name, n in kept.items() if n < widths[name])
    assert all(kept[layer.name] >= len(layer.kept_filters) for layer in loose.layers)  # rounded up, not down
    flops = [count_costs(pruner.structure_for(pruner.units[:n]), topo).flops for n in range(0, len(pruner.units), 40)]
    assert flops == sorted(flops, reverse=True)
    with pytest.raises(TrainingError, match="channel multiple"):
        pruner.align(0)
