"""Targets, latency tables and pruning to a latency budget: alignment per ISA, fingerprint/cache
key refusal, the budget search on a hand-made latency table, the one-group fallback, the closed
loop of measured corrections and the alignment ladder (on synthetic tables; one small ResNet-20 table
is measured). The CLI's tests are in test_latency_cli.py."""

from __future__ import annotations

import json

import pytest
import torch

from dsp_deploy.errors import LatencyModelError, UsageError
from dsp_deploy.hardware.budget import LatencyGoal, fallback_to_one_group, target_shape
from dsp_deploy.hardware.latency import LatencyTable
from dsp_deploy.models import create, topology
from dsp_deploy.structure import count_costs, dense_structure
from dsp_deploy.targets import Fingerprint, channel_multiple, isa_level, make_target
from dsp_deploy.training.latency_prune import LatencyOptions, whole_flops
from dsp_deploy.training.pruning import GroupChannelPruner
from dsp_deploy.training.regularizer import prunable_convs

from support.latency import synthetic_table


def _fp(isa: str, gpu: str | None = None) -> Fingerprint:
    return Fingerprint("Test CPU", isa, gpu, "8.9" if gpu else None)


@pytest.mark.parametrize(
    "flags, level, multiple",
    [
        ({"sse4_2", "avx", "avx2", "fma"}, "avx2", 8),
        ({"avx2", "avx512f", "avx512bw"}, "avx512", 16),
        ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "amx", 16),
        ({"sse4_2"}, "sse4.2", 4),
        ({"asimd"}, "neon", 4),
    ],
)
def test_alignment_per_isa(flags, level, multiple):
    assert isa_level(flags) == level
    assert channel_multiple(make_target(fingerprint=_fp(level))) == multiple


def test_alignment_gpu_precision_and_override():
    assert channel_multiple(make_target("trt", precision="fp16", fingerprint=_fp("avx2", "RTX"))) == 8
    assert channel_multiple(make_target("ort-cuda", precision="fp32", fingerprint=_fp("avx2", "RTX"))) == 4
    assert channel_multiple(make_target(fingerprint=_fp("avx512"), multiple=32)) == 32


def test_unknown_backend_and_bad_goal():
    from dsp_deploy.errors import UsageError

    with pytest.raises(UsageError, match="unknown backend 'tpu'"):
        make_target("tpu")
    with pytest.raises(UsageError):
        LatencyGoal(speedup=0.5)
    assert LatencyGoal(speedup=2.0).budget_ms(10.0) == 5.0


def test_cache_key_depends_on_fingerprint_and_versions():
    a, b = make_target(fingerprint=_fp("avx2")), make_target(fingerprint=_fp("avx512"))
    versions = {"onnxruntime": "1.0", "torch": "2.0", "tensorrt": None}
    assert a.cache_key(versions) != b.cache_key(versions)
    assert a.cache_key(versions) != a.cache_key(dict(versions, onnxruntime="1.1"))
    assert a.cache_key(versions) == make_target(fingerprint=_fp("avx2")).cache_key(versions)


def _pruner(table, groups=2, seed=0):
    topo = topology(table.model)
    torch.manual_seed(seed)
    state = create(table.model).state_dict()
    gen = torch.Generator().manual_seed(seed)
    assignments = {s.name: torch.randperm(s.out_channels, generator=gen) % groups for s in prunable_convs(topo)}
    return topo, GroupChannelPruner(
        topo, state, assignments, groups, channel_multiple=8, finalize=fallback_to_one_group(table, topo)
    )


def test_predictor_is_exact_on_a_bilinear_table():
    target = make_target(fingerprint=_fp("avx2"))
    table = synthetic_table("resnet20", 2, target)
    topo = topology("resnet20")
    spec = topo.conv("layer2.1.conv1")  # 32 -> 32, 3x3 at 16x16
    layer = dense_structure(topo).layer(spec.name)
    assert table.conv_options(spec, layer)["union"] == pytest.approx(1e-6 * 32 * 32 * 9 * 16 * 16 + 0.01)


def _half_groups(spec, unread: int = 0):
    """``spec``'s conv as two groups: even filters read the first half of the inputs, odd ones the second
    (but its last ``unread``), and the last quarter of the filters pruned."""
    from dsp_deploy.structure import ConvStructure

    cut = spec.out_channels * 3 // 4
    filters = [f % 2 if f < cut else -1 for f in range(spec.out_channels)]
    half = spec.in_channels // 2
    return ConvStructure(spec.name, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, 2, filters,
                         [range(half), range(half, spec.in_channels - unread)])


@pytest.mark.parametrize("whole", [True, False])
def test_block_outputs_are_priced_as_they_write_the_stream(whole):
    """Priced under the whole-stream rule (ONNX Runtime CPU's shape rules) a grouped block output also pays
    writing the stream (the table's measured stream write), its one-group form writes every stream channel
    (the pruned ones as zero rows), a one-group stream reader reads the whole stream; priced as they are
    (the latency-targeted search and the predictor), each conv alone."""
    from dsp_deploy.hardware.latency import site_key, stream_key

    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo = topology("resnet20")
    out, reader, inner = topo.conv("layer2.1.conv2"), topo.conv("layer2.1.conv1"), topo.conv("layer1.0.conv1")
    assert out.role == "block_out" and reader.reads.startswith("stream:") and inner.role != "block_out"
    table.stream_writes = {stream_key(out): 0.5, stream_key(inner): 0.5}
    ms = lambda ci, co, g=1: 1e-6 * ci * co * 9 * 16 * 16 * g + 0.01  # noqa: E731 - the synthetic table's formula
    options = table.conv_options(out, _half_groups(out), whole_stream=whole)
    assert options["grouped"] == pytest.approx(ms(16, 12, 2) + (0.5 if whole else 0.0))
    assert options["union"] == pytest.approx(ms(32, 32 if whole else 24))
    assert table.option_macs(out, _half_groups(out), whole_stream=whole) == {
        "union": (32 if whole else 24) * 32 * 9 * 16 * 16, "grouped": 2 * 12 * 16 * 9 * 16 * 16}
    reads = table.conv_options(reader, _half_groups(reader, unread=4), whole_stream=whole)["union"]
    assert reads == pytest.approx(ms(32 if whole else 28, 24))
    inner_options = table.conv_options(inner, _half_groups(inner), whole_stream=whole)  # no stream write
    assert inner_options["grouped"] == pytest.approx(table._site_ms(site_key(inner), 2, 8, 6))
    assert table.conv_options(out, _half_groups(out)) == table.conv_options(out, _half_groups(out), whole_stream=False)


def test_flops_target_exchange_turns_a_costly_group_into_one():
    """Under a FLOPs target a one-group conv's extra MACs are pruned elsewhere: it falls back where its extra
    latency is below what those MACs save at ``ms_per_mac``, and keeps its groups where it is not."""
    target = make_target(fingerprint=_fp("avx2"))
    topo = topology("resnet20")
    spec = topo.conv("layer2.1.conv1")
    layer = _half_groups(spec)
    table = synthetic_table("resnet20", 2, target)
    options, macs = table.conv_options(spec, layer), table.option_macs(spec, layer)
    assert options["grouped"] < options["union"]  # groups are faster as such: no plain fallback
    structure = dense_structure(topo).with_layers({spec.name: layer})
    assert fallback_to_one_group(table, topo)(structure).layer(spec.name).groups == 2
    rate = (options["union"] - options["grouped"]) / (macs["union"] - macs["grouped"])  # break-even ms per MAC
    assert fallback_to_one_group(table, topo, 1.01 * rate)(structure).layer(spec.name).groups == 1
    assert fallback_to_one_group(table, topo, 0.99 * rate)(structure).layer(spec.name).groups == 2
    dense_rate = table.conv_ms_per_mac(topo)  # the synthetic table: 1e-6 ms per MAC plus 0.01 ms per conv
    body = [s for s in topo.convs if s.role not in ("stem", "downsample")]
    assert dense_rate == pytest.approx(1e-6 + 0.01 * len(body) / sum(s.dense_macs() for s in body))


def test_budget_search_respects_the_budget():
    target = make_target(fingerprint=_fp("avx2"))
    table = synthetic_table("resnet20", 2, target)
    topo, pruner = _pruner(table)
    dense_ms = table.predict(dense_structure(topo), topo)
    budget = LatencyGoal(speedup=1.5).budget_ms(dense_ms)
    beta, predicted, structure = pruner.search_cost(lambda s: table.predict(s, topo), budget)
    assert predicted <= budget and predicted > 0.9 * budget  # within the budget, not far below
    assert table.predict(structure, topo) == pytest.approx(predicted)
    assert 0 < beta < 1 and count_costs(structure, topo).flops < count_costs(dense_structure(topo), topo).flops
    from dsp_deploy.errors import TrainingError

    with pytest.raises(TrainingError, match="out of reach"):
        pruner.search_cost(lambda s: table.predict(s, topo), 0.01)


def _closed_loop(table, topo, pruner, speedup, whole, corrections=3, of_structure=False, stat="median",
                 contention=1.0):
    """`to_budget` with a hand-made whole-model latency standing for the export: ``whole(predicted ms)``,
    or ``whole(structure)`` with ``of_structure``; the pruned model's median is ``contention`` times its
    minimum (a loaded host slows it, not dense)."""
    from dsp_deploy.training.latency_prune import LatencyOptions, to_budget

    dense = dense_structure(topo)
    flops, dense_flops = whole_flops(topo)
    timed = whole if of_structure else (lambda structure: whole(table.predict(structure, topo)))

    def measure(structure):
        pruned, base = timed(structure), timed(dense)
        return {"dense": {"median": base, "min": base}, "pruned": {"median": contention * pruned, "min": pruned}}

    def search(budget):
        beta, _, structure = pruner.search_cost(lambda s: table.predict(s, topo), budget)
        return structure, {"beta": beta}

    def by_flops(ratio):
        beta, _, structure = pruner.search_cost(flops, (1 - ratio) * dense_flops)
        return structure, {"beta": beta}

    opts = LatencyOptions(LatencyGoal(speedup=speedup), corrections=corrections, stat=stat)
    return to_budget(opts, make_target(fingerprint=_fp("avx2")), table, topo, search, by_flops,
                     lambda: (pruner.structure(1.0), {"beta": 1.0}), measure)


def test_measured_miss_is_corrected_by_re_searching():
    """The export keeps a fixed cost the table does not know (whole = predicted + 40% of dense): the
    first structure, right by the table, misses the measured goal; the corrections bring it within 5%."""
    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo, pruner = _pruner(table)
    fixed = 0.4 * table.predict(dense_structure(topo), topo)
    structure, record = _closed_loop(table, topo, pruner, 1.3, lambda ms: ms + fixed)
    first, last = record["corrections"][0], record["corrections"][-1]
    assert abs(first["measured_ms"] - first["measured_goal_ms"]) > 0.05 * first["measured_goal_ms"]
    assert abs(record["measured_speedup"] - 1.3) <= 0.05 * 1.3
    assert first["searched"] == "latency table" and record["budget_ms"] == first["budget_ms"]
    assert last["searched"] == "flops" and last["flops_reduction_pct"] > first["flops_reduction_pct"]
    assert record["beta"] > 0 and record["measured_ms"] == pytest.approx(table.predict(structure, topo) + fixed,
                                                                          rel=1e-3)
    _, exact = _closed_loop(table, topo, pruner, 1.3, lambda ms: ms)  # table right: no correction
    assert len(exact["corrections"]) == 1  # the table was right: measured once, no re-search


def test_tries_are_judged_by_the_chosen_statistic():
    """Under contention (medians 25% above minimums), tries judged by the minimum reach the goal by
    minimums; judged by the median (the default), by medians: the two pick different structures."""
    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo, pruner = _pruner(table)
    by_min = _closed_loop(table, topo, pruner, 1.3, lambda ms: ms, stat="min", contention=1.25)[1]
    assert by_min["judged_by"] == "min" and abs(by_min["measured_speedup_min"] - 1.3) <= 0.05 * 1.3
    assert by_min["measured_speedup"] < 1.3 * 0.85
    assert by_min["corrections"][-1]["measured_ms"] == by_min["measured_min_ms"]
    by_median = _closed_loop(table, topo, pruner, 1.3, lambda ms: ms, contention=1.25)[1]
    assert by_median["judged_by"] == "median" and abs(by_median["measured_speedup"] - 1.3) <= 0.05 * 1.3
    assert by_median["flops_reduction_pct"] > by_min["flops_reduction_pct"]
    with pytest.raises(UsageError, match="--latency-stat must be one of median, min, not .mean."):
        LatencyOptions(LatencyGoal(speedup=1.3), stat="mean").target()


def test_a_correction_landing_on_a_measured_structure_ends_the_loop():
    """Where the pruner's FLOPs steps are too coarse to give a new structure (here every FLOPs search
    returns the first try's), a correction would time the same export again: the loop stops, one try."""
    from dsp_deploy.training.latency_prune import LatencyOptions, to_budget

    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo, pruner = _pruner(table)
    first = pruner.search_cost(lambda s: table.predict(s, topo), 0.8 * table.predict(dense_structure(topo), topo))[2]
    timed = []

    def measure(structure):
        timed.append(structure)
        return {"dense": {"median": 10.0, "min": 10.0}, "pruned": {"median": 9.5, "min": 9.5}}  # misses 1.3x

    opts = LatencyOptions(LatencyGoal(speedup=1.3), corrections=3)
    structure, record = to_budget(opts, make_target(fingerprint=_fp("avx2")), table, topo,
                                  lambda budget: (first, {}), lambda ratio: (first, {}),
                                  lambda: (pruner.structure(1.0), {}), measure)
    assert len(timed) == 1 and len(record["corrections"]) == 1 and structure is first


def test_goal_beyond_the_table_is_measured_before_refusing():
    """The table says out of reach; the smallest structure measured twice as fast as the table says
    reaches it (corrected back up to the goal), and a goal beyond the measured floor is one error."""
    from dsp_deploy.errors import TrainingError

    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo, pruner = _pruner(table)
    dense_ms = table.predict(dense_structure(topo), topo)
    floor = table.predict(pruner.structure(1.0), topo)
    reach = dense_ms / floor
    faster = lambda ms: ms if ms >= dense_ms else ms / 2  # noqa: E731 - pruned exports twice as fast
    _, record = _closed_loop(table, topo, pruner, 1.2 * reach, faster)
    assert abs(record["measured_speedup"] - 1.2 * reach) <= 0.05 * 1.2 * reach
    with pytest.raises(TrainingError, match="out of reach.*measured, the smallest structure runs"):
        _closed_loop(table, topo, pruner, 3 * reach, faster)
    fixed = 0.3 * dense_ms  # reachable by the table but not as measured: the closest try is kept, no error
    structure, slower = _closed_loop(table, topo, pruner, 0.95 * reach, lambda ms: ms + fixed)
    tries = [step["measured_ms"] for step in slower["corrections"]]
    assert len(tries) >= 2 and slower["measured_ms"] == min(tries)


def test_channel_pruner_searches_the_latency_budget():
    from dsp_deploy.baselines import L1ChannelPruner

    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo = topology("resnet20")
    torch.manual_seed(0)
    pruner = L1ChannelPruner(topo, create("resnet20").state_dict())
    budget = 0.7 * table.predict(dense_structure(topo), topo)
    predicted, structure = pruner.match_cost(lambda s: table.predict(s, topo), budget)
    assert 0.9 * budget < predicted <= budget
    assert max(layer.groups for layer in structure.layers) == 1


def test_layer_falls_back_to_one_group_when_groups_cost_more():
    target = make_target(fingerprint=_fp("avx2"))
    topo, pruner = _pruner(synthetic_table("resnet20", 2, target, grouped_ms=50.0))  # groups never pay
    structure = pruner.structure(0.3)
    assert all(layer.groups == 1 for layer in structure.layers)
    _, cheap = _pruner(synthetic_table("resnet20", 2, target, grouped_ms=1e-4))  # groups always pay
    assert max(layer.groups for layer in cheap.structure(0.3).layers) == 2


def test_calibration_scale_and_offset():
    from dsp_deploy.hardware.latency import fit_calibration

    target = make_target(fingerprint=_fp("avx2"))
    table = synthetic_table("resnet20", 2, target)
    topo, pruner = _pruner(table)
    dense, pruned = dense_structure(topo), pruner.structure(0.4)
    x_dense, x_pruned = table.parts_ms(dense, topo), table.parts_ms(pruned, topo)
    fit_calibration(table, [(dense, 2 * x_dense), (pruned, x_pruned + x_dense)])  # slope 1, offset x_dense
    assert table.scale == pytest.approx(1.0) and table.offset == pytest.approx(x_dense)
    fit_calibration(table, [(dense, 2 * x_dense), (pruned, 2 * x_dense)])  # export gave no saving: dense scale only
    assert table.scale == pytest.approx(2.0) and table.offset == 0.0
    deeper = pruner.structure(0.6)
    x_deeper = table.parts_ms(deeper, topo)
    samples = [(dense, 2 * x_dense), (pruned, x_pruned + x_dense), (deeper, x_deeper + x_dense)]
    fit_calibration(table, samples)  # several samples on one line: least squares recovers it exactly
    assert table.scale == pytest.approx(1.0) and table.offset == pytest.approx(x_dense)
    samples[1] = (pruned, 1.2 * (x_pruned + x_dense))  # one disturbed timing: a line between, not a cliff
    fit_calibration(table, samples)
    assert 0.5 < table.scale < 1.0 and table.offset > x_dense


def test_stale_table_format_is_remeasured_not_refused(tmp_path):
    from dsp_deploy.hardware.latency import FORMAT_VERSION, _older_format

    path = tmp_path / "table.json"
    path.write_text(f'{{"format": "dsp-deploy/latency-table", "format_version": {FORMAT_VERSION - 1}}}')
    assert _older_format(path)
    path.write_text(f'{{"format": "dsp-deploy/latency-table", "format_version": {FORMAT_VERSION}}}')
    assert not _older_format(path)  # current version but corrupt: LatencyTable.load refuses it
    path.write_text("not json")
    assert not _older_format(path)


def test_table_from_another_machine_is_refused(tmp_path):
    here, there = make_target(fingerprint=_fp("avx2")), make_target(fingerprint=_fp("avx512"))
    path = tmp_path / "table.json"
    synthetic_table("resnet20", 2, there).save(path)
    assert LatencyTable.load(path, there).model == "resnet20"
    with pytest.raises(LatencyModelError, match="measured on another target"):
        LatencyTable.load(path, here)
    data = json.loads(path.read_text())
    data["sites"] = {"x": {"grids": {"1": {"ci": [1], "co": [1, 2], "ms": [[1.0]]}}}}
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyModelError, match="corrupt latency table"):
        LatencyTable.load(path, there)
    path.write_text("{not json")
    with pytest.raises(LatencyModelError, match="not a readable JSON"):
        LatencyTable.load(path, there)


def test_stream_writes_are_saved_and_checked(tmp_path):
    target = make_target(fingerprint=_fp("avx2"))
    table = synthetic_table("resnet20", 2, target)
    table.stream_writes = {"32x16x16": 0.25}
    path = tmp_path / "table.json"
    table.save(path)
    assert LatencyTable.load(path, target).stream_writes == {"32x16x16": 0.25}
    for bad in ({"32x16x16": "fast"}, None):
        data = json.loads(path.read_text())
        data["stream_writes"] = bad
        path.write_text(json.dumps(data))
        with pytest.raises(LatencyModelError, match="corrupt latency table"):
            LatencyTable.load(path, target)


def test_stream_write_sample_restores_adds_and_rectifies():
    """The timed stream write is what the exporter does to a grouped block output (its channels padded with
    a zero, gathered into stream order, added to the stream, rectified), run in ONNX Runtime."""
    import numpy as np
    import onnx

    from dsp_deploy.hardware.onnx_samples import stream_write_sample
    from dsp_deploy.runtime.ort import ort_session

    blob = stream_write_sample(6, (2, 3), batch=1)
    assert [n.op_type for n in onnx.load_from_string(blob).graph.node] == ["Pad", "Gather", "Add", "Relu"]
    rng = np.random.default_rng(0)
    y, s = rng.standard_normal((1, 3, 2, 3), dtype=np.float32), rng.standard_normal((1, 6, 2, 3), dtype=np.float32)
    (out,) = ort_session(blob).run(None, {"y": y, "s": s})
    restored = np.zeros_like(s)
    restored[:, ::2] = y  # channel 2j is written by output j, the odd ones by nothing
    np.testing.assert_allclose(out, np.maximum(s + restored, 0), rtol=1e-6)


def test_a_measured_cpu_table_has_the_stream_writes_of_its_blocks():
    from dsp_deploy.hardware.latency import build_table

    table = build_table("resnet20", make_target(), [2], runs=2)
    assert set(table.stream_writes) == {"16x32x32", "32x16x16", "64x8x8"}
    assert all(ms > 0 for ms in table.stream_writes.values())


def test_alignment_ladder_halves_the_target_multiple_unless_given():
    from dsp_deploy.training.ladder import alignment_ladder

    assert alignment_ladder(16, explicit=False) == [16, 8, 4]
    assert alignment_ladder(8, explicit=False) == [8, 4]
    assert alignment_ladder(4, explicit=False) == [4]
    assert alignment_ladder(16, explicit=True) == [16]


def test_ladder_trials_keep_what_each_multiple_gave_and_refuse_in_one_line():
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.training.ladder import LadderTrials

    def refuse(multiple: int) -> int:
        raise TrainingError(f"the goal is out of reach ({multiple})")

    walk = LadderTrials()
    assert walk.attempt(16, refuse) is None and walk.attempt(8, refuse) is None
    assert walk.relaxed and [t["channel_multiple"] for t in walk.tried] == [16, 8]
    assert str(walk.refusal("under the rules of X")) == (
        "the goal is out of reach (8) at channel multiple 8 (channel multiples tried: 16, 8) under the rules of X")
    single = LadderTrials()
    single.attempt(4, refuse)
    assert str(single.refusal()) == "the goal is out of reach (4) at channel multiple 4"
    reached = LadderTrials()
    assert reached.attempt(8, lambda m: 2 * m) == 16
    reached.reached(8, "fine")
    assert not reached.relaxed and reached.tried == [{"channel_multiple": 8, "outcome": "fine"}]


def test_alignment_is_relaxed_only_where_the_target_multiple_cannot_reach_the_goal(tmp_path):
    """ResNet-20 G=4: a goal between the smallest structure at the target's alignment and at a finer
    one is reached at the finer one (the record says why); an explicit multiple is never relaxed: there
    the goal is reached by the one-group fallback alone (grouped convs may cut the stream reads and
    block outputs a one-group conv keeps whole), and a goal below that too is refused."""
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.training.ladder import MIN_MULTIPLE
    from dsp_deploy.training.latency_prune import LatencyOptions, dsp_to_budget

    target = make_target()  # this machine: the table must carry its fingerprint
    native = channel_multiple(target)
    if native <= MIN_MULTIPLE:
        pytest.skip(f"this machine's alignment ({native}) has nothing finer to relax to")
    table = synthetic_table("resnet20", 4, target)
    table_file = tmp_path / "table.json"
    table.save(table_file)
    topo = topology("resnet20")
    torch.manual_seed(0)
    state = create("resnet20").state_dict()
    gen = torch.Generator().manual_seed(0)
    assignments = {s.name: torch.randperm(s.out_channels, generator=gen) % 4 for s in prunable_convs(topo)}

    def floor(multiple, rules=None):
        pruner = GroupChannelPruner(topo, state, assignments, 4, channel_multiple=multiple,
                                    finalize=rules or target_shape(table, topo, target.backend))  # dsp_to_budget's
        return table.predict(pruner.structure(1.0), topo)

    coarse, fine = floor(native), floor(MIN_MULTIPLE)
    assert fine < coarse  # finer groups prune more of the narrow layers
    goal = LatencyGoal(latency_ms=(coarse + fine) / 2)

    def prune(multiple=None):
        opts = LatencyOptions(goal, table=str(table_file), measure=False, channel_multiple=multiple)
        return dsp_to_budget(opts, topo, state, assignments, 4, {"method": "dsp"})

    found = prune()
    assert found.multiple < native and found.record["channel_multiple"] == found.multiple
    assert found.structure.metadata["channel_multiple"] == found.multiple
    assert found.record["predicted_ms"] <= goal.latency_ms
    tried = found.record["alignment_tried"]
    assert tried[0]["channel_multiple"] == native and "out of reach" in tried[0]["outcome"]
    assert found.record["shape_rules"] == "whole stream"
    per_conv = floor(native, fallback_to_one_group(table, topo))
    assert per_conv < goal.latency_ms  # the fallback alone reaches it at the target's multiple
    explicit = prune(multiple=native)
    assert explicit.multiple == native and "alignment_tried" not in explicit.record
    assert "the whole-stream rule cannot reach the goal" in explicit.record["shape_rules"]
    assert explicit.record["predicted_ms"] <= goal.latency_ms
    goal = LatencyGoal(latency_ms=0.9 * per_conv)
    with pytest.raises(TrainingError, match="out of reach"):
        prune(multiple=native)
    easy = LatencyGoal(latency_ms=coarse * 1.05)  # reachable at the target's alignment: not relaxed
    opts = LatencyOptions(easy, table=str(table_file), measure=False)
    kept = dsp_to_budget(opts, topo, state, assignments, 4, {"method": "dsp"})
    assert kept.multiple == native and "alignment_tried" not in kept.record


def test_corrections_bracket_the_goal_on_a_staircase():
    """The export's dense fallbacks make measured latency a staircase of predicted latency: here every
    structure predicted above 85% of dense runs as dense, every one below at 90% of its prediction. The
    first try (table right) runs too fast; the corrections search the FLOPs reduction, each one between
    the closest too-fast and too-slow tries once both exist, and reach the goal in few tries."""
    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo, pruner = _pruner(table)
    dense_ms = table.predict(dense_structure(topo), topo)
    stair = lambda ms: dense_ms if ms > 0.85 * dense_ms else 0.9 * ms  # noqa: E731
    _, record = _closed_loop(table, topo, pruner, 1.3, stair, corrections=5)
    steps = record["corrections"]
    assert abs(record["measured_speedup"] - 1.3) <= 0.05 * 1.3 and len(steps) <= 4
    assert steps[0]["measured_ms"] < 0.95 * steps[0]["measured_goal_ms"]
    assert all(st["searched"] == "flops" for st in steps[1:])
    for i in range(1, len(steps)):  # inside the bracket of the tries before it
        done = steps[:i]
        fast = [s["flops_reduction_pct"] for s in done if s["measured_ms"] < s["measured_goal_ms"]]
        slow = [s["flops_reduction_pct"] for s in done if s["measured_ms"] > s["measured_goal_ms"]]
        assert min(fast, default=100) > steps[i]["flops_reduction_pct"] > max(slow, default=0)


def test_corrections_cross_a_jump_the_table_does_not_see():
    """A run's recorded shape (ResNet-20 G=4, Fashion-MNIST, one alignment): measured speedup flat
    near 1.25x up to ~72% fewer FLOPs, then steep (1.40x at 76%, 1.59x at 79%, 2.07x at 84%), here
    over this pruner's FLOPs range. In that run the table put all of it within 13% of predicted
    latency, and six tries searching the predicted budget ended at 1.23x for the 1.5x goal; searching
    the FLOPs reduction between measured tries reaches each goal within 5% (six tries at most)."""
    import numpy as np

    table = synthetic_table("resnet20", 2, make_target(fingerprint=_fp("avx2")))
    topo, pruner = _pruner(table)
    flops, dense_flops = whole_flops(topo)
    top = 1 - flops(pruner.structure(1.0)) / dense_flops
    recorded = [(0.0, 1.0), (0.671, 1.19), (0.692, 1.25), (0.717, 1.30), (0.725, 1.26), (0.762, 1.40),
                (0.788, 1.59), (0.841, 2.07)]
    xs = np.array([r for r, _ in recorded]) * top / 0.841  # the recorded curve over this pruner's reach
    ys = np.array([v for _, v in recorded])

    def whole(structure):
        return 10.0 / float(np.interp(1 - flops(structure) / dense_flops, xs, ys))

    for speedup in (1.25, 1.5, 2.0):
        _, record = _closed_loop(table, topo, pruner, speedup, whole, corrections=5, of_structure=True)
        assert abs(record["measured_speedup"] - speedup) <= 0.05 * speedup, record["corrections"]



def test_tables_are_calibrated_on_structures_of_their_family():
    """A G>1 table (DSP) is calibrated on DSP samples, a G=1 table (channel pruning) on L1 channel-pruned
    ones, and the two are cached apart: one scale and offset cannot fit both (DSP's exports realise less
    of their parts' saving)."""
    from dsp_deploy.hardware.latency import default_table_path
    from dsp_deploy.training.latency_prune import calibration_family, calibration_structures

    topo = topology("resnet20")
    keep = lambda s: s  # noqa: E731 - no one-group fallback needed to tell the families apart
    dsp = calibration_structures("resnet20", 2, 8, topo, keep)
    channels = calibration_structures("resnet20", 1, 8, topo, keep)
    assert set(dsp) == {"dense", "pruned-b0.1", "pruned-b0.3", "pruned-b0.5"}
    assert "dense" in channels and len(channels) >= 3
    assert all(k == "dense" or k.startswith("channels-r") for k in channels)
    assert max(layer.groups for layer in dsp["pruned-b0.3"].layers) == 2
    dense_flops = count_costs(dense_structure(topo)).flops
    for name, structure in channels.items():
        assert max(layer.groups for layer in structure.layers) == 1
        if name != "dense":
            assert count_costs(structure).flops < 0.8 * dense_flops
            assert all(len(layer.kept_filters) % 8 == 0 for layer in structure.layers if not layer.is_dense)
    target = make_target(fingerprint=_fp("avx2"))
    assert calibration_family(1) == "channels" and calibration_family(4) is None
    assert default_table_path("resnet20", target, family="channels") != default_table_path("resnet20", target)


def test_measured_tries_are_timed_for_the_minimum_window(monkeypatch):
    """Each measured try times dense and the result for ``min_seconds`` (default MEASURE_SECONDS): a burst
    of host contention shorter than that cannot decide a correction."""
    from dsp_deploy.hardware import whole
    from dsp_deploy.runtime.timing import MEASURE_SECONDS
    from dsp_deploy.training.latency_prune import LatencyOptions, _measurer

    seen = []
    monkeypatch.setattr(whole, "measure_structures", lambda structures, target, **kw: seen.append(kw))
    topo = topology("resnet20")
    opts = LatencyOptions(LatencyGoal(speedup=1.5))
    _measurer(opts, opts.target(), topo, {})(dense_structure(topo))
    _measurer(LatencyOptions(LatencyGoal(speedup=1.5), min_seconds=0.5), opts.target(), topo, {})(dense_structure(topo))
    assert [kw["min_seconds"] for kw in seen] == [MEASURE_SECONDS, 0.5]
