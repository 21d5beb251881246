"""Every validation rule of the structure IR, and its JSON round-trip."""
from __future__ import annotations

import json

import pytest

from dsp_deploy.errors import StructureError
from dsp_deploy.models import topology
from dsp_deploy.structure import (
    PRUNED,
    ConvStructure,
    ModelStructure,
    dense_structure,
    drop_dead_reads,
    load_structure,
    save_structure,
    validate_structure,
)


def conv(**overrides):
    fields = dict(name="c", in_channels=4, out_channels=4, kernel_size=3, stride=1, groups=2,
                  filter_groups=(0, 0, 1, PRUNED), group_inputs=((0, 1), (2, 3)))
    fields.update(overrides)
    return ConvStructure(**fields)


def test_valid_layer_views():
    layer = conv()
    assert layer.group_filters(0) == (0, 1) and layer.group_filters(1) == (2,)
    assert layer.kept_filters == (0, 1, 2)
    assert layer.read_channels == (0, 1, 2, 3)
    assert not layer.is_dense


@pytest.mark.parametrize("overrides, fragment", [
    (dict(groups=0, group_inputs=()), "groups must be >= 1"),
    (dict(groups=3), "3 groups declared but 2"),
    (dict(filter_groups=(0, 0, 1)), "3 entries for 4 filters"),
    (dict(filter_groups=(0, 0, 2, 1)), "filter 2 is assigned to group 2"),
    (dict(filter_groups=(0, 0, -2, 1)), "filter 2 is assigned to group -2"),
    (dict(group_inputs=((0, 0), (2, 3))), "more than once"),
    (dict(group_inputs=((0, 4), (2, 3))), "outside 0..3"),
    (dict(group_inputs=((0, -1), (2, 3))), "outside 0..3"),
    (dict(group_inputs=((1, 0), (2, 3))), "not sorted"),
    (dict(group_inputs=((0, 1), ())), "group 1 has filters but reads no input"),
])
def test_layer_rules(overrides, fragment):
    with pytest.raises(StructureError, match=fragment) as info:
        conv(**overrides)
    assert "layer 'c'" in str(info.value)


def test_empty_group_without_filters_is_allowed():
    layer = conv(filter_groups=(0, 0, 0, PRUNED), group_inputs=((0, 1), ()))
    assert layer.group_filters(1) == ()


@pytest.fixture()
def r20():
    topo = topology("resnet20")
    return topo, dense_structure(topo)


def replace(structure, name, **kw):
    return structure.with_layers({name: structure.layer(name).replace(**kw)})


def test_model_rules_missing_unknown_duplicate(r20):
    topo, s = r20
    missing = ModelStructure(s.model, s.num_classes, s.input_size, s.layers[:-1])
    with pytest.raises(StructureError, match="layer3.2.conv2.*has no entry"):
        validate_structure(missing, topo)
    extra = ModelStructure(s.model, s.num_classes, s.input_size, s.layers + (conv(name="layer9.conv1"),))
    with pytest.raises(StructureError, match="layer9.conv1.*no such conv"):
        validate_structure(extra, topo)
    dup = ModelStructure(s.model, s.num_classes, s.input_size, s.layers + (s.layers[3],))
    with pytest.raises(StructureError, match="listed more than once"):
        validate_structure(dup, topo)


def test_model_rule_shape_mismatch(r20):
    topo, s = r20
    wrong = ConvStructure.dense("layer1.0.conv1", 16, 16, 3, 2)
    with pytest.raises(StructureError, match="layer1.0.conv1.*does not match the model"):
        validate_structure(s.with_layers({"layer1.0.conv1": wrong}), topo)


def test_coupling_inside_block(r20):
    topo, s = r20
    # conv1 prunes filter 5; conv2 still reads channel 5 -> error naming conv2
    s1 = replace(s, "layer1.0.conv1", filter_groups=[0] * 5 + [PRUNED] + [0] * 10)
    with pytest.raises(StructureError, match=r"layer1.0.conv2.*channel\(s\) \[5\]"):
        validate_structure(s1, topo)
    fixed = drop_dead_reads(s1, topo)
    validate_structure(fixed, topo)
    assert 5 not in fixed.layer("layer1.0.conv2").read_channels


def test_coupling_residual_stream(r20):
    topo, s = r20
    # channel 3 of stream 'layer2' is pruned by the downsample conv and every block output conv
    producers = topo.stream("layer2").producers
    pruned = [0] * 3 + [PRUNED] + [0] * 28
    s1 = s.with_layers({p: s.layer(p).replace(filter_groups=pruned) for p in producers})
    with pytest.raises(StructureError, match=r"layer2.1.conv1.*stream 'layer2'"):
        validate_structure(s1, topo)
    # if only some producers prune it, the channel is still live: valid (DSP conv_b filter pruning)
    s2 = s.with_layers({producers[0]: s.layer(producers[0]).replace(filter_groups=pruned)})
    validate_structure(s2, topo)


def test_json_round_trip(tmp_path, r20):
    topo, s = r20
    s1 = replace(s, "layer2.0.conv1", groups=2, filter_groups=[0, 1] * 16,
                 group_inputs=[[0, 2, 4], [1, 3, 5, 7]])
    s1 = ModelStructure(s1.model, s1.num_classes, s1.input_size, s1.layers, {"method": "test"})
    path = tmp_path / "structure.json"
    save_structure(s1, path)
    back = load_structure(path)
    assert back == s1
    assert back.layer("layer2.0.conv1").group_inputs == ((0, 2, 4), (1, 3, 5, 7))
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 1 and doc["format"] == "dsp-deploy/structure" and "schema_version" not in doc


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d.update(format_version=99), "format_version 99, newer than the 1"),
    (lambda d: d.update(format="x"), "not a structure document"),
    (lambda d: d["layers"][1].update(group_inputs=[[0, 16]]), r"layer1.0.conv1.*outside 0..15"),
    (lambda d: d["layers"][1].update(group_inputs=[[0, 1, 1]]), r"layer1.0.conv1.*more than once"),
    (lambda d: d["layers"][1].pop("filter_groups"), r"layer1.0.conv1.*malformed"),
    (lambda d: d.update(model="resnet9000"), "unknown model"),
])
def test_json_rejects_bad_documents(r20, mutate, fragment):
    _, s = r20
    doc = s.to_dict()
    mutate(doc)
    with pytest.raises(StructureError, match=fragment):
        ModelStructure.from_dict(doc)


def test_invalid_json_text():
    with pytest.raises(StructureError, match="not valid JSON"):
        ModelStructure.from_json("{nope")
