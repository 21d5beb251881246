"""Property-based tests of the structure IR (hypothesis, fixed seed, bounded examples).

Valid structures are generated layer by layer so that every rule holds (a group with filters
reads at least one channel, and only channels some producer keeps); they must round-trip through
JSON unchanged. Invalid ones are a valid document with one planted defect; parsing must raise
StructureError naming a layer (never another exception).
"""
from __future__ import annotations

import json
import random
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dsp_deploy.errors import StructureError  # noqa: E402
from dsp_deploy.models import topology  # noqa: E402
from dsp_deploy.models.topology import Topology  # noqa: E402
from dsp_deploy.structure import PRUNED, ConvStructure, ModelStructure  # noqa: E402

# derandomize: the same examples on every run and machine (CI is reproducible); the example
# budget keeps the whole file to a few seconds on one loaded core.
PROFILE = settings(derandomize=True, max_examples=60, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOPOLOGIES = {name: topology(name) for name in ("resnet20", "resnet32")}


def _live(topo: Topology, kept: dict[str, set[int]], source: str) -> set[int]:
    """Channels produced at ``source`` given each conv's kept filters (mirrors the validator's rule)."""
    if source == "input":
        return {0, 1, 2}
    if source.startswith("stream:"):
        return set().union(*(kept[p] for p in topo.stream(source).producers))
    return kept[source]


def _random_structure(model: str, rng: random.Random, metadata: dict[str, Any]) -> ModelStructure:
    """A structure obeying every rule: random groups, pruned filters and kept inputs per group."""
    topo = TOPOLOGIES[model]
    assignment: dict[str, list[int]] = {}
    for spec in topo.convs:
        groups = rng.randint(1, 4)
        prune = rng.choice((0.0, 0.3, 0.8))
        fg = [PRUNED if rng.random() < prune else rng.randrange(groups) for _ in range(spec.out_channels)]
        if all(g == PRUNED for g in fg):
            fg[rng.randrange(len(fg))] = 0
        assignment[spec.name] = [groups, *fg]
    kept = {n: {f for f, g in enumerate(a[1:]) if g != PRUNED} for n, a in assignment.items()}
    layers = []
    for spec in topo.convs:
        groups, fg = assignment[spec.name][0], assignment[spec.name][1:]
        live = sorted(_live(topo, kept, spec.reads))
        inputs = []
        for g in range(groups):
            count = rng.randint(1 if g in fg else 0, len(live))
            inputs.append(tuple(sorted(rng.sample(live, count))))
        layers.append(ConvStructure(spec.name, spec.in_channels, spec.out_channels, spec.kernel_size,
                                    spec.stride, groups, tuple(fg), tuple(inputs)))
    return ModelStructure(topo.model, topo.num_classes, topo.input_size, tuple(layers), metadata)


# A seeded Random per example: a small draw (fast, no large-example health check) that still
# shrinks towards seed 0.
RNGS = st.integers(0, 2**32 - 1).map(random.Random)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
structures = st.builds(
    _random_structure,
    st.sampled_from(sorted(TOPOLOGIES)),
    RNGS,
    st.dictionaries(st.text(max_size=8), JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3), max_size=3),
)


@PROFILE
@given(structures)
def test_valid_structures_round_trip(structure):
    text = structure.to_json()
    back = ModelStructure.from_json(text)
    assert back == structure
    assert back.to_json() == text
    assert ModelStructure.from_json(structure.to_json(indent=1)) == structure


# -- planted defects: each returns the name of the layer the error must name, or None when any
#    layer may be named (a coupling break is reported at the first consumer of the dead channel).
def _layer(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return rng.choice(doc["layers"])


def out_of_range_channel(doc, rng):
    layer = _layer(doc, rng)
    bad = rng.choice((layer["in_channels"], layer["in_channels"] + 7, -1, -(10**30), 10**30))
    g = rng.randrange(layer["groups"])
    layer["group_inputs"][g] = sorted({*layer["group_inputs"][g], bad})
    return layer["name"]


def duplicate_channel(doc, rng):
    layer = _layer(doc, rng)
    g = max(range(layer["groups"]), key=lambda i: len(layer["group_inputs"][i]))
    chans = layer["group_inputs"][g]
    if not chans:
        return None  # cannot happen: a layer with kept filters has a non-empty group
    c = rng.choice(chans)
    layer["group_inputs"][g] = sorted(chans + [c])
    return layer["name"]


def wrong_count(doc, rng):
    layer = _layer(doc, rng)
    how = rng.randrange(6)
    if how == 0:
        layer["filter_groups"].append(0)
    elif how == 1:
        layer["filter_groups"].pop()
    elif how == 2:
        layer["groups"] += rng.choice((1, -1, 10**18))
    elif how == 3:
        layer["group_inputs"].append([0])
    elif how == 4:
        layer[rng.choice(("in_channels", "out_channels", "kernel_size", "stride"))] += rng.choice((1, -1))
    else:
        layer["filter_groups"][rng.randrange(len(layer["filter_groups"]))] = rng.choice(
            (layer["groups"], -2, 10**20))
    return layer["name"]


def broken_coupling(doc, rng):
    by_name = {l["name"]: l for l in doc["layers"]}
    topo = TOPOLOGIES[doc["model"]]
    spec = rng.choice([c for c in topo.convs if c.reads != "input"])
    consumer = by_name[spec.name]
    read = sorted({c for g, chans in enumerate(consumer["group_inputs"])
                   if g in consumer["filter_groups"] for c in chans})
    channel = rng.choice(read)
    producers = topo.stream(spec.reads).producers if spec.reads.startswith("stream:") else (spec.reads,)
    for name in producers:
        by_name[name]["filter_groups"][channel] = PRUNED
    return None


WRONG_VALUES = ("3", 3.0, 2.5, True, None, [1], {"a": 1}, float("inf"), "")


def wrong_type(doc, rng):
    layer = _layer(doc, rng)
    key = rng.choice(("in_channels", "out_channels", "kernel_size", "stride", "groups",
                      "filter_groups", "group_inputs", "filter_groups[i]", "group_inputs[g]", "group_inputs[g][i]"))
    value = rng.choice(WRONG_VALUES)
    if key == "filter_groups[i]":
        layer["filter_groups"][rng.randrange(len(layer["filter_groups"]))] = value
    elif key == "group_inputs[g]":
        layer["group_inputs"][rng.randrange(layer["groups"])] = rng.choice(("0123", 5, None, {"0": 1}))
    elif key == "group_inputs[g][i]":
        chans = max(layer["group_inputs"], key=len)
        chans[rng.randrange(len(chans))] = value if value != [1] else "1"
    else:
        layer[key] = value if not (key in ("filter_groups", "group_inputs") and isinstance(value, list)) else "0"
    return layer["name"]


def missing_key(doc, rng):
    layer = _layer(doc, rng)
    key = rng.choice(("name", "in_channels", "out_channels", "kernel_size", "stride", "groups",
                      "filter_groups", "group_inputs"))
    del layer[key]
    return f"layers[{doc['layers'].index(layer)}]" if key == "name" else layer["name"]


def not_an_object(doc, rng):
    i = rng.randrange(len(doc["layers"]))
    doc["layers"][i] = rng.choice(([1, 2], "layer1.0.conv1", 7, None))
    return f"layers[{i}]"


def huge_number(doc, rng):
    layer = _layer(doc, rng)
    key = rng.choice(("in_channels", "out_channels", "kernel_size", "stride", "groups"))
    layer[key] = rng.choice((10**40, -(10**40), 2**63, 2**64 + 1))
    return layer["name"]


DEFECTS = [out_of_range_channel, duplicate_channel, wrong_count, broken_coupling, wrong_type, missing_key,
           not_an_object, huge_number]


@settings(PROFILE, max_examples=120)
@given(structures, st.sampled_from(DEFECTS), RNGS)
def test_invalid_structures_raise_structure_error_naming_the_layer(structure, defect, rng):
    doc = json.loads(structure.to_json())
    expected = defect(doc, rng)
    text = json.dumps(doc)  # through JSON text, as a file would be read
    try:
        ModelStructure.from_json(text)
    except StructureError as exc:
        names = {c.name for c in TOPOLOGIES[structure.model].convs}
        assert exc.layer is not None, f"{defect.__name__}: error names no layer: {exc}"
        assert exc.layer == expected if expected else exc.layer in names, (defect.__name__, str(exc))
        assert f"layer '{exc.layer}'" in str(exc)
    else:
        pytest.fail(f"{defect.__name__} was accepted")


# -- document-level defects: no layer to name, but still only StructureError -----------------------
DOC_DEFECTS = {
    "format": lambda d: d.update(format="dsp-deploy/checkpoint"),
    "format_version": lambda d: d.update(format_version=True),
    "model": lambda d: d.update(model=["resnet20"]),
    "unknown model": lambda d: d.update(model="resnet9000"),
    "num_classes": lambda d: d.update(num_classes=10**30),
    "num_classes type": lambda d: d.update(num_classes="10"),
    "input_size": lambda d: d.update(input_size=[32]),
    "input_size huge": lambda d: d.update(input_size=[10**9, 32]),
    "layers": lambda d: d.update(layers={"conv1": {}}),
    "metadata": lambda d: d.update(metadata=[["a", 1]]),
    "missing": lambda d: d.pop("layers"),
    "missing layer": lambda d: d["layers"].pop(),
    "duplicate layer": lambda d: d["layers"].append(d["layers"][0]),
}


@PROFILE
@given(structures, st.sampled_from(sorted(DOC_DEFECTS)))
def test_invalid_documents_raise_structure_error(structure, defect):
    doc = json.loads(structure.to_json())
    DOC_DEFECTS[defect](doc)
    with pytest.raises(StructureError):
        ModelStructure.from_json(json.dumps(doc))


@PROFILE
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(st.text(max_size=5), inner, max_size=3)).map(json.dumps)))
def test_arbitrary_text_never_escapes_as_another_exception(text):
    with pytest.raises(StructureError):
        ModelStructure.from_json(text)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"format": ' + "9" * 5000 + "}", "\udcff", b"\xff\xfe{"])
def test_hostile_json_text(text):
    """Deep nesting (RecursionError), a 5000-digit number (ValueError) and bad encodings."""
    with pytest.raises(StructureError):
        ModelStructure.from_json(text)
