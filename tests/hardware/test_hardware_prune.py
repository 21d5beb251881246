"""DSP pruning to a FLOPs target shaped for a target (`prune --hardware-aware`): the whole-stream rule of
ONNX Runtime CPU, the one-group fallback and the alignment ladder, on latency tables computed by hand
(nothing is timed here)."""
from __future__ import annotations

import pytest
import torch

from dsp_deploy.errors import TrainingError
from dsp_deploy.hardware.budget import live_groups, target_shape, whole_stream_when_one_group
from dsp_deploy.models import create, topology
from dsp_deploy.models.topology import ROLE_BLOCK_OUT
from dsp_deploy.structure import count_costs, validate_structure
from dsp_deploy.targets import make_target
from dsp_deploy.training.hardware_prune import SHAPED_TOLERANCE_PCT, HardwareTarget, dsp_to_flops_on_target
from dsp_deploy.training.pruning import GroupChannelPruner
from dsp_deploy.training.regularizer import prunable_convs

from support.latency import synthetic_table


def _setup(groups: int, seed: int = 0):
    topo = topology("resnet20")
    torch.manual_seed(seed)
    state = create("resnet20").state_dict()
    gen = torch.Generator().manual_seed(seed)
    assignments = {s.name: torch.randperm(s.out_channels, generator=gen) % groups for s in prunable_convs(topo)}
    return topo, state, assignments


def _whole(topo, structure):
    """(stream readers reading part of the stream, block outputs with pruned filters) among one-group convs."""
    partial_reads, pruned_outs = [], []
    for spec in topo.convs:
        layer = structure.layer(spec.name)
        if layer.is_dense or live_groups(layer) != 1:
            continue
        if spec.reads.startswith("stream:") and len(layer.read_channels) < layer.in_channels:
            partial_reads.append(spec.name)
        if spec.role == ROLE_BLOCK_OUT and len(layer.kept_filters) < layer.out_channels:
            pruned_outs.append(spec.name)
    return partial_reads, pruned_outs


def test_one_group_convs_read_and_write_the_whole_stream():
    """G=1 pruning cuts stream reads and block outputs; the rule restores exactly those (the weights the
    export runs as zeros), keeps the block-inner cuts and leaves a valid structure with more FLOPs."""
    topo, state, assignments = _setup(1)
    pruned = GroupChannelPruner(topo, state, assignments, 1).structure(0.5)
    reads, outs = _whole(topo, pruned)
    assert reads and outs  # the paper's pruning cuts both
    whole = whole_stream_when_one_group(topo)(pruned)
    validate_structure(whole, topo)
    assert _whole(topo, whole) == ([], [])
    for spec in topo.convs:
        before, after = pruned.layer(spec.name), whole.layer(spec.name)
        if not spec.reads.startswith("stream:") and spec.role != ROLE_BLOCK_OUT:
            assert after == before  # block-inner convs: untouched
        if spec.reads.startswith("stream:") and spec.role != ROLE_BLOCK_OUT:
            assert after.kept_filters == before.kept_filters
    assert count_costs(whole, topo).flops > count_costs(pruned, topo).flops


def test_grouped_convs_keep_their_cuts():
    topo, state, assignments = _setup(2)
    pruned = GroupChannelPruner(topo, state, assignments, 2).structure(0.5)
    grouped = [layer.name for layer in pruned.layers if layer.groups > 1]
    whole = whole_stream_when_one_group(topo)(pruned)
    assert grouped and all(whole.layer(name) == pruned.layer(name) for name in grouped)


@pytest.mark.parametrize("grouped_ms,one_group", [(1e9, True), (0.0, False)])
def test_flops_target_is_met_under_the_targets_shape_rules(tmp_path, grouped_ms, one_group):
    """Where the table prices groups above one group, every pruned conv falls back to one group and, on
    ort-cpu, reads and writes the whole stream: the 50% FLOPs cut then comes from block-inner channels
    (at a finer alignment where the target's cannot reach it). Where groups are free, they stay."""
    target = make_target()  # this machine: the table must carry its fingerprint
    table = synthetic_table("resnet20", 2, target, grouped_ms=grouped_ms)
    table.save(tmp_path / "table.json")
    topo, state, assignments = _setup(2)
    hw = HardwareTarget(table=str(tmp_path / "table.json"))
    shaped = dsp_to_flops_on_target(hw, topo, state, assignments, 2, {"method": "dsp"}, 0.5, "dsp")
    structure, record = shaped.result.structure, shaped.record
    assert abs(count_costs(structure, topo).dsp_flops_reduction_pct - 50.0) <= SHAPED_TOLERANCE_PCT
    live = [live_groups(layer) for layer in structure.layers if not layer.is_dense]
    assert record["one_group_layers"] == live.count(1) and record["grouped_layers"] == sum(n > 1 for n in live)
    assert (record["grouped_layers"] == 0) == one_group
    assert _whole(topo, structure) == ([], [])
    assert record["target"]["batch"] == 1 and record["channel_multiple"] == shaped.multiple
    assert record["predicted_speedup"] > 1.0
    if "alignment_tried" in record:  # relaxed: each coarser multiple missed the target, and says how
        assert all(not t["outcome"].endswith("fewer FLOPs") for t in record["alignment_tried"][:-1])
    ladder = r"at channel multiple 4 \(channel multiples tried: \d+, .*4\) under the shape rules of ort-cpu"
    with pytest.raises(TrainingError, match=ladder):  # the finest multiple's outcome, named as such
        dsp_to_flops_on_target(hw, topo, state, assignments, 2, {"method": "dsp"}, 0.99, "dsp")


def test_other_backends_keep_the_fallback_only():
    """The whole-stream rule is ONNX Runtime CPU's; a backend outside it gets the one-group fallback alone."""
    topo, state, assignments = _setup(1)
    table = synthetic_table("resnet20", 1, make_target())
    pruned = GroupChannelPruner(topo, state, assignments, 1).structure(0.5)
    assert target_shape(table, topo, "trt")(pruned) == pruned
    assert _whole(topo, target_shape(table, topo, "ort-cpu")(pruned)) == ([], [])


def test_groups_are_traded_for_the_macs_they_cost(tmp_path):
    """The synthetic table prices every MAC alike, so a one-group conv is slower as such (it reads the union
    of its groups' channels) but no slower per MAC: under a FLOPs target its extra MACs are pruned elsewhere
    at that same price, and with the stream writes of its blocks nothing is gained by keeping groups."""
    from dsp_deploy.hardware.latency import plan_stream_writes

    target = make_target()
    table = synthetic_table("resnet20", 2, target)
    topo, state, assignments = _setup(2)
    table.stream_writes = {key: 0.05 for key in plan_stream_writes(topo)}
    table.save(tmp_path / "table.json")
    rules = target_shape(table, topo, "ort-cpu")  # no exchange rate: each conv priced as such
    plain = GroupChannelPruner(topo, state, assignments, 2, finalize=rules).structure(0.5)
    assert sum(live_groups(layer) > 1 for layer in plain.layers if not layer.is_dense) > 0  # as such, groups pay
    hw = HardwareTarget(table=str(tmp_path / "table.json"))
    shaped = dsp_to_flops_on_target(hw, topo, state, assignments, 2, {"method": "dsp"}, 0.5, "dsp")
    assert shaped.record["grouped_layers"] == 0 and shaped.record["one_group_layers"] > 0


def test_ort_cpu_shape_rules_price_the_stream_write():
    """ONNX Runtime CPU's shape rules charge a grouped block output its stream write: priced dear, every
    grouped block output becomes one group there, while another backend's rules leave it grouped."""
    from dsp_deploy.hardware.latency import plan_stream_writes

    topo, state, assignments = _setup(2)
    table = synthetic_table("resnet20", 2, make_target())
    table.stream_writes = {key: 1e3 for key in plan_stream_writes(topo)}
    pruned = GroupChannelPruner(topo, state, assignments, 2).structure(0.5)
    outs = [s.name for s in topo.convs if s.role == ROLE_BLOCK_OUT and live_groups(pruned.layer(s.name)) > 1]
    on_cpu, on_trt = target_shape(table, topo, "ort-cpu")(pruned), target_shape(table, topo, "trt")(pruned)
    kept = [name for name in outs if live_groups(on_trt.layer(name)) > 1]  # groups pay, the write aside
    assert kept and all(live_groups(on_cpu.layer(name)) == 1 for name in kept)


def test_latency_targets_are_searched_under_the_targets_shape_rules(tmp_path):
    """`prune --speedup` on ort-cpu: where the table prices groups above one group, the result's convs are
    one group and read and write the whole stream (as the export runs them), and the budget is met by the
    structure so shaped (its whole-stream MACs included in the prediction)."""
    from dsp_deploy.hardware.budget import LatencyGoal
    from dsp_deploy.structure import dense_structure
    from dsp_deploy.training.latency_prune import LatencyOptions, dsp_to_budget

    target = make_target()
    table = synthetic_table("resnet20", 2, target, grouped_ms=1e9)
    table.save(tmp_path / "table.json")
    topo, state, assignments = _setup(2)
    opts = LatencyOptions(LatencyGoal(speedup=1.3), table=str(tmp_path / "table.json"), measure=False)
    found = dsp_to_budget(opts, topo, state, assignments, 2, {"method": "dsp"})
    structure = found.structure
    pruned = [layer for layer in structure.layers if not layer.is_dense]
    assert pruned and all(live_groups(layer) == 1 for layer in pruned)
    assert _whole(topo, structure) == ([], [])
    budget = LatencyGoal(speedup=1.3).budget_ms(table.predict(dense_structure(topo), topo))
    assert table.predict(structure, topo) <= budget and found.record["predicted_ms"] <= found.record["budget_ms"]
