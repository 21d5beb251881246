"""Whole-model export: every lowering matches PyTorch, the grouped form has the promised shape,
the plan file is written, bad input writes nothing."""
from __future__ import annotations

import json

import onnx
import pytest
import torch

from dsp_deploy.errors import ParityError, UnsupportedLayerError
from dsp_deploy.export import export_onnx, load_plan
from dsp_deploy.export.exporter import parity_check

from .helpers import tiny_checkpoint


def conv_layers(path):
    """ONNX Conv nodes with the model layer they implement (from doc_string)."""
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            feeder = producers.get(node.input[0])
            out.append((node.doc_string.removeprefix("layer="), group, feeder.op_type if feeder else None))
    return out


def assert_grouped_form(path, structure):
    convs = conv_layers(path)
    for layer in structure.layers:
        active = [g for g in range(layer.groups) if layer.group_filters(g)]
        if len(active) > 1:
            mine = [c for c in convs if c[0] == layer.name]
            assert len(mine) == 1, layer.name
            assert mine[0][1] == len(active) and mine[0][2] in ("Gather", "Slice"), (layer.name, mine)


@pytest.fixture(scope="module")
def tiny():
    return tiny_checkpoint("resnet20", groups=3, size=16, seed=4)


@pytest.mark.parametrize("lowering", ["grouped", "branches", "union", "dense"])
def test_forced_lowerings_match_pytorch(tmp_path, tiny, lowering):
    out = tmp_path / "m.onnx"
    result = export_onnx(tiny, out, lowering=lowering)
    assert out.is_file() and result.plan_path.is_file()
    assert set(result.parity_max_diff) == {1, 5} and result.max_diff < 1e-4
    plan = load_plan(result.plan_path)
    assert plan.mode == lowering
    labels = {c.lowering for c in plan.layers.values()}
    assert labels <= {lowering, "dense"}
    if lowering == "grouped":
        assert_grouped_form(out, tiny.structure)
    assert_passes_recorded(plan, result, tiny.structure)


def assert_passes_recorded(plan, result, structure):
    """The plan JSON holds each pass's report, in pipeline order: lower-conv applied at the
    lowered convs and says why the others stayed dense."""
    data = json.loads(result.plan_path.read_text())
    assert data["format_version"] == 2 and plan.passes == result.passes
    names = [p.name for p in plan.passes]
    assert names[:4] == ["narrow-streams", "narrow-streams", "fold-batchnorm", "lower-conv"]
    assert names[-1] == "gather-to-slice" and len(data["passes"]) == len(names)
    lower = plan.passes[3]
    lowered = {name for name, choice in plan.layers.items() if choice.lowering != "dense"}
    assert set(lower.applied_at) == lowered and lower.applied == len(lowered)
    for layer in structure.layers:
        if layer.name not in lowered:
            assert ("lower-conv", "dense by plan") in plan.skips(layer.name)


def test_auto_plan_is_written_and_no_slower_per_block(tmp_path, tiny):
    out = tmp_path / "auto.onnx"
    result = export_onnx(tiny, out, lowering="auto", plan_batches=(1,), runs=3, cache_path=str(tmp_path / "c.json"))
    data = json.loads((tmp_path / "auto.onnx.plan.json").read_text())
    assert data["mode"] == "auto" and set(data["chosen"]) == {f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)}
    for unit, cand in data["chosen"].items():
        times = data["measurements_ms"].get(unit)
        if times and not cand.startswith("dense"):
            assert times[cand]["b1"] <= times["dense"]["b1"] * 1.02
    assert result.max_diff < 1e-4
    assert "lowering plan (auto" in result.plan.table()
    again = export_onnx(tiny, tmp_path / "auto2.onnx", lowering="auto", plan_batches=(1,), runs=3,
                        cache_path=str(tmp_path / "c.json"))  # cached: same plan
    assert again.plan.chosen == result.plan.chosen


def test_plan_cache_is_keyed_by_structure_not_weights(tmp_path, tiny):
    """A block's timings do not depend on its weight values: the same structure with other weights (a
    masked or fine-tuned checkpoint of a measured one) finds every block timed and gets the same plan."""
    from dsp_deploy.checkpoint import Checkpoint

    from .helpers import random_net

    cache = tmp_path / "c.json"
    first = export_onnx(tiny, tmp_path / "a.onnx", lowering="auto", plan_batches=(1,), runs=2, cache_path=str(cache))
    timed = set(json.loads(cache.read_text())["entries"])
    other = Checkpoint(tiny.model, random_net(tiny.model, 9).state_dict(), tiny.structure)
    second = export_onnx(other, tmp_path / "b.onnx", lowering="auto", plan_batches=(1,), runs=2,
                         cache_path=str(cache))
    assert set(json.loads(cache.read_text())["entries"]) == timed  # nothing re-timed
    # the same block timings, hence the same per-block choices (the whole-model check behind them is timed
    # afresh each export, and on a loaded machine may send one of the two to the dense fallback)
    assert second.plan.measurements == first.plan.measurements and second.max_diff < 1e-4
    fallback = {"dense (whole-model fallback)"}
    if not fallback & (set(first.plan.chosen.values()) | set(second.plan.chosen.values())):
        assert second.plan.chosen == first.plan.chosen


def test_fp16_variant(tmp_path, tiny):
    result = export_onnx(tiny, tmp_path / "h.onnx", lowering="grouped", fp16=True)
    model = onnx.load(str(tmp_path / "h.onnx"))
    assert {i.data_type for i in model.graph.initializer} <= {10, 7}  # float16 weights, int64 indices
    assert model.graph.input[0].type.tensor_type.elem_type == 1  # float32 interface
    assert model.graph.output[0].type.tensor_type.elem_type == 1
    assert set(result.parity_max_diff) == {1, 5}  # checked against PyTorch within the fp16 tolerance
    assert result.passes[-1].name == "fp16" and result.passes[-1].applied == len(model.graph.initializer) - sum(
        i.data_type == 7 for i in model.graph.initializer)  # every float constant cast once


def test_opset_and_dynamic_batch(tmp_path, tiny):
    export_onnx(tiny, tmp_path / "m.onnx", lowering="grouped", opset=17)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert model.opset_import[0].version == 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_unsupported_layer_is_named_and_nothing_written(tmp_path):
    from dsp_deploy.models import create

    model = create("resnet20")
    model.layer2[1].conv1 = torch.nn.Conv2d(32, 32, 3, 1, 2, dilation=2, bias=False)
    with pytest.raises(UnsupportedLayerError, match="layer2.1.conv1"):
        export_onnx(model, tmp_path / "x.onnx", model_name="resnet20", lowering="dense")
    model = create("resnet20")
    model.layer1[0].relu = torch.nn.GELU()
    with pytest.raises(UnsupportedLayerError, match="layer1.0.relu"):
        export_onnx(model, tmp_path / "x.onnx", model_name="resnet20", lowering="dense")
    assert list(tmp_path.iterdir()) == []


def test_parity_failure_refuses(tmp_path, tiny):
    from dsp_deploy.checkpoint import build_model

    export_onnx(tiny, tmp_path / "m.onnx", lowering="grouped")
    other = build_model(tiny_checkpoint("resnet20", groups=3, size=16, seed=5))
    with pytest.raises(ParityError, match="differs"):
        parity_check((tmp_path / "m.onnx").read_bytes(), other, (16, 16), fp16=False)


def test_auto_plan_candidates_follow_the_channel_multiple(tmp_path, tiny):
    """channel_multiple=8 (AVX2's vector width): the planner's padded candidates round to 8
    (union8, grouped8s, ...), none to the default 16, and the plan records the multiple."""
    from dsp_deploy.errors import UsageError

    result = export_onnx(tiny, tmp_path / "a8.onnx", lowering="auto", plan_batches=(1,), runs=2,
                         cache_path=str(tmp_path / "c.json"), channel_multiple=8)
    plan = result.plan
    assert plan.notes["channel_multiple"] == 8 and result.max_diff < 1e-4
    names = {cand for times in plan.measurements.values() for cand in times}
    assert {"union8", "all8"} <= names and not any("16" in n for n in names)
    for choice in plan.layers.values():
        assert choice.pad in (1, 8) and choice.in_pad in (0, 1, 8)
    with pytest.raises(UsageError, match="channel multiple"):
        export_onnx(tiny, tmp_path / "bad.onnx", lowering="auto", channel_multiple=0)
    assert not (tmp_path / "bad.onnx").exists()
