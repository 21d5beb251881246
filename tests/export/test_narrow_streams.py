"""Stream narrowing: residual streams keep only their live channels (L1 channel-pruning
structures become plain, narrower ResNets with no Gather/Pad/Slice), exactly; DSP structures
with an unpruned stem are left alone, and the pass says why."""
from __future__ import annotations

import numpy as np
import pytest

from dsp_deploy.checkpoint import Checkpoint, build_model
from dsp_deploy.compare.onnx_cost import onnx_costs
from dsp_deploy.export import export_onnx
from dsp_deploy.export.build import build_plain_graph
from dsp_deploy.export.passes import NarrowStreams
from dsp_deploy.export.pipeline import lower_graph
from dsp_deploy.export.planner import forced_plan
from dsp_deploy.export.units import find_units, unit_graph
from dsp_deploy.models import get_config, topology
from dsp_deploy.structure import PRUNED, count_costs, drop_dead_reads
from dsp_deploy.structure.validate import live_channels, validate_structure

from .helpers import check_pass, l1_checkpoint, ops, run, tiny_checkpoint

MOVES = ("Gather", "Pad", "Slice", "Concat")


def plain_graph(ck: Checkpoint, masked: bool = True):
    """(plain graph, topology) of a checkpoint, with the structure's masks applied or not."""
    state = build_model(ck).state_dict() if masked else ck.state_dict
    weights = {k: v.detach().numpy() for k, v in state.items()}
    topo = topology(ck.model, ck.structure.num_classes, ck.structure.input_size)
    return build_plain_graph(topo, weights, ck.structure, stem_pool=get_config(ck.model).family == "imagenet"), topo


@pytest.fixture(scope="module")
def l1():
    return l1_checkpoint("resnet20", size=16, reduction=0.6)


def x16(batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 3, 16, 16)).astype(np.float32)


def test_streams_keep_only_live_channels_exactly(l1):
    graph, topo = plain_graph(l1)
    before = run(graph, x16())
    result = check_pass(graph, NarrowStreams(), x16(), counts=ops(graph))  # weights change, nodes do not
    assert result.applied == 3 and not result.skipped  # stem, layer2, layer3
    for stream in topo.streams:
        width = len(live_channels(l1.structure, topo, f"stream:{stream.name}"))
        assert width < stream.channels
        for producer in stream.producers:
            assert graph.consts[graph.find_layer(producer).inputs[1]].shape[0] == width
            assert PRUNED not in graph.context.structure[producer].filter_groups  # pruned alike: all dropped
        for consumer in stream.consumers:
            node = graph.find_layer(consumer, "Gemm" if consumer == "fc" else "Conv")
            assert graph.consts[node.inputs[1]].shape[1] == width
    again = NarrowStreams().run(graph)
    assert again.applied == 0 and all("is live" in why for why in again.skipped.values())
    lower_graph(graph, forced_plan(graph, topo, "grouped").layers)
    assert not set(ops(graph)) & set(MOVES)
    np.testing.assert_allclose(run(graph, x16()), before, rtol=1e-4, atol=1e-4)


def test_producer_pruning_a_channel_live_elsewhere_writes_zeros(l1):
    """layer1.1.conv2 drops stream channel c that the other producers keep: c stays in the
    stream and that producer writes a zero filter for it, so the Add stays aligned."""
    topo = topology("resnet20", input_size=(16, 16))
    layer = l1.structure.layer("layer1.1.conv2")
    c = layer.kept_filters[0]
    groups = [PRUNED if f == c else g for f, g in enumerate(layer.filter_groups)]
    structure = drop_dead_reads(l1.structure.with_layers({layer.name: layer.replace(filter_groups=groups)}), topo)
    validate_structure(structure, topo)
    ck = Checkpoint("resnet20", l1.state_dict, structure)
    graph, _ = plain_graph(ck)
    before = run(graph, x16())
    assert check_pass(graph, NarrowStreams(), x16(), counts=ops(graph)).applied == 3
    live = sorted(live_channels(structure, topo, "stream:stem"))
    narrowed = graph.context.structure["layer1.1.conv2"]
    assert narrowed.out_channels == len(live) and narrowed.filter_groups[live.index(c)] == PRUNED
    assert [f for f, g in enumerate(narrowed.filter_groups) if g == PRUNED] == [live.index(c)]
    assert not graph.consts[graph.find_layer("layer1.1.conv2").inputs[1]][live.index(c)].any()
    lower_graph(graph, forced_plan(graph, topo, "union").layers)
    np.testing.assert_allclose(run(graph, x16()), before, rtol=1e-4, atol=1e-4)


def test_check_says_why_it_did_not_apply(l1):
    dsp, _ = plain_graph(tiny_checkpoint("resnet20", groups=2, size=16, seed=3))  # stem and downsamples unpruned
    result = NarrowStreams().run(dsp)
    assert result.applied == 0 and set(result.skipped) == {"conv1", "layer2.0.downsample.0", "layer3.0.downsample.0"}
    assert all("is live" in why for why in result.skipped.values())

    unmasked, _ = plain_graph(l1, masked=False)  # pruned filters still carry weights: not safe to drop
    result = NarrowStreams().run(unmasked)
    assert result.applied == 0 and all("non-zero weights" in why for why in result.skipped.values())

    graph, topo = plain_graph(l1)
    unit = next(u for u in find_units(graph, topo) if u.name == "layer2.0")
    result = NarrowStreams().run(unit_graph(graph, unit))  # one block cut out: the stream is not all there
    assert result.applied == 0 and "not one Conv in this graph" in result.skipped["layer2.0.downsample.0"]


@pytest.mark.parametrize("lowering", ["grouped", "union", "auto"])
def test_l1_resnet20_exports_as_a_plain_narrow_resnet(tmp_path, l1, lowering):
    out = tmp_path / "l1.onnx"
    result = export_onnx(l1, out, lowering=lowering, plan_batches=(1,), runs=3, cache_path=str(tmp_path / "c.json"))
    assert result.max_diff < 1e-4  # parity against the masked PyTorch model passed
    macs, moves = onnx_costs(out)
    assert moves == {} and not set(result.node_counts) & set(MOVES)
    assert result.node_counts["Conv"] == 21 and result.node_counts["Add"] == 9
    assert set(result.plan.notes["narrowed_streams"]) == {"stem", "layer2", "layer3"}
    flops = count_costs(l1.structure).flops
    if lowering != "auto":
        assert macs == flops  # every kept channel computed once, nothing else
    elif result.plan.notes.get("fallback"):  # timing: the planned model measured slower than dense as a whole
        assert "dense (whole-model fallback)" in set(result.plan.chosen.values()) and macs > flops
    else:  # the planner may pad channel counts to 16 where it measured faster (which, depends on timing)
        assert flops <= macs <= _padded_bound(l1.structure, 16)


def _padded_bound(structure, multiple: int) -> float:
    """Whole-model MACs with every conv's kept input and output counts rounded up to ``multiple`` (at most
    all of them): the most the planner's padded candidates can execute."""
    from dsp_deploy.structure.validate import topology_for

    topo, report = topology_for(structure), count_costs(structure)
    convs = {spec.name: spec for spec in topo.convs}
    total = float(report.flops)
    for cost in report.layers:
        spec, layer = convs.get(cost.name), structure.layer(cost.name) if cost.name in convs else None
        if spec is None or not layer.read_channels or not layer.kept_filters:
            continue
        ci, co = len(layer.read_channels), len(layer.kept_filters)
        up_ci = min(-(-ci // multiple) * multiple, spec.in_channels)
        up_co = min(-(-co // multiple) * multiple, spec.out_channels)
        total += cost.macs * (up_ci * up_co / (ci * co) - 1)
    return total
