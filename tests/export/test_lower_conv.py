from __future__ import annotations

import numpy as np
import pytest

from dsp_deploy.export.passes import LowerConv
from dsp_deploy.export.plan import LayerChoice
from dsp_deploy.structure import PRUNED, ConvStructure

from .helpers import check_pass, conv_graph, random_layer, sample


def _layer(groups: int = 3, pruned: float = 0.25, seed: int = 0) -> ConvStructure:
    return random_layer("c", 12, 10, 3, groups, np.random.default_rng(seed), keep=0.4, pruned=pruned)


@pytest.mark.parametrize("pad", [1, 16])
def test_grouped_is_one_grouped_conv_fed_by_a_gather(pad):
    layer = _layer()
    g = conv_graph(layer)
    counts = {"Gather": 2, "Conv": 1, "Relu": 1}  # input gather + restore gather
    result = check_pass(g, LowerConv({"c": LayerChoice("grouped", pad)}), sample(12), counts=counts)
    assert result.applied == 1 and len(result.applied_at) == 1
    (conv,) = [n for n in g.nodes if n.op == "Conv"]
    assert conv.attrs["group"] == 3
    assert g.producer(conv.inputs[0]).op == "Gather"
    per_group = g.consts[conv.inputs[1]].shape
    assert per_group[0] % 3 == 0 and (pad == 1 or (per_group[0] // 3 % 16 == 0 and per_group[1] % 16 == 0))


def test_branches_one_conv_per_group_and_concat():
    g = conv_graph(_layer())
    counts = {"Gather": 4, "Conv": 3, "Concat": 1, "Pad": 1, "Relu": 1}  # one input Gather per branch, one restore
    check_pass(g, LowerConv({"c": LayerChoice("branches")}), sample(12), counts=counts)


@pytest.mark.parametrize("aligned", [False, True])
def test_union_plain_conv_over_read_channels(aligned):
    layer = _layer()
    g = conv_graph(layer)
    assert len(layer.read_channels) < 12
    counts = {"Gather": 1, "Conv": 1, "Relu": 1} if aligned else {"Gather": 2, "Pad": 1, "Conv": 1, "Relu": 1}
    check_pass(g, LowerConv({"c": LayerChoice("union", aligned=aligned)}), sample(12), counts=counts)
    (conv,) = [n for n in g.nodes if n.op == "Conv"]
    weight = g.consts[conv.inputs[1]]
    assert conv.attrs["group"] == 1
    assert weight.shape[1] == len(layer.read_channels)
    assert weight.shape[0] == (10 if aligned else len(layer.kept_filters))


def test_union_all_inputs_has_no_input_gather():
    """in_pad=0: the conv reads every input channel (unread ones as zero columns), so the only
    Gather left is the restore one, and the result is unchanged in ONNX Runtime."""
    layer = _layer()
    assert len(layer.read_channels) < 12
    g = conv_graph(layer)
    counts = {"Gather": 1, "Conv": 1, "Relu": 1}
    check_pass(g, LowerConv({"c": LayerChoice("union", 16, 0)}), sample(12), counts=counts)
    (conv,) = [n for n in g.nodes if n.op == "Conv"]
    assert g.consts[conv.inputs[1]].shape[1] == 12 and conv.inputs[0] == g.inputs[0].name
    assert LayerChoice("union", 16, 0).label() == "union/16+all-inputs"


def test_dense_choice_and_dense_layer_are_left_alone():
    layer = _layer()
    g = conv_graph(layer)
    result = check_pass(g, LowerConv({"c": LayerChoice("dense")}), sample(12), counts={"Conv": 1, "Relu": 1})
    assert result.applied == 0 and list(result.skipped.values()) == ["dense by plan"]
    unpruned = ConvStructure.dense("c", 12, 10, 3, 1)
    g2 = conv_graph(unpruned)
    result = check_pass(g2, LowerConv({"c": LayerChoice("grouped")}), sample(12), counts={"Conv": 1, "Relu": 1})
    assert result.applied == 0 and "not pruned" in next(iter(result.skipped.values()))


def test_uneven_groups_padded_minimally():
    layer = ConvStructure("c", 8, 6, 1, 1, 2, (0, 0, 0, 0, 1, 1), ((0, 1, 2), (3, 4, 5, 6, 7)))
    g = conv_graph(layer)
    check_pass(g, LowerConv({"c": LayerChoice("grouped")}), sample(8), counts={"Gather": 2, "Conv": 1, "Relu": 1})
    (conv,) = [n for n in g.nodes if n.op == "Conv"]
    assert g.consts[conv.inputs[1]].shape[:2] == (8, 5)  # 2 groups x max(4, 2) filters, max(3, 5) inputs


def test_single_group_padded_past_the_input_reads_it_whole():
    """One active group padded (to 16) beyond the 12 input channels: the conv reads the input
    as is (unread channels as zero columns) instead of a Gather repeating channels."""
    layer = _layer(groups=1, pruned=0.25)
    assert len(layer.read_channels) < 12
    g = conv_graph(layer)
    counts = {"Gather": 1, "Conv": 1, "Relu": 1}  # the restore Gather only (it reads a padded zero filter)
    check_pass(g, LowerConv({"c": LayerChoice("grouped", 16)}), sample(12), counts=counts)
    (conv,) = [n for n in g.nodes if n.op == "Conv"]
    assert conv.inputs[0] == "x" and g.consts[conv.inputs[1]].shape[:2] == (16, 12)


def test_split_turns_uneven_groups_into_equal_aligned_virtual_groups():
    """Groups of 2, 3 and 26 filters (pad 2, so full kernel speed from 8 filters a group): split
    gives 1 + 1 + 4 virtual groups of 8 filters (6 x 8 = 48 rows) instead of 3 groups padded to
    26 (78 rows); exact output."""
    assign = (0, 0, 1, 1, 1) + (2,) * 26 + (PRUNED,) * 2
    layer = ConvStructure("c", 12, 33, 3, 1, 3, assign, ((0, 1, 2), (3, 4, 5, 6, 7), (1, 5, 8, 9, 10, 11)))
    g = conv_graph(layer)
    counts = {"Gather": 2, "Conv": 1, "Relu": 1}
    check_pass(g, LowerConv({"c": LayerChoice("grouped", 2, split=True)}), sample(12), counts=counts)
    (conv,) = [n for n in g.nodes if n.op == "Conv"]
    assert conv.attrs["group"] == 6 and g.consts[conv.inputs[1]].shape[:2] == (48, 6)
    assert len(g.consts[g.producer(conv.inputs[0]).inputs[1]]) == 6 * 6  # the Gather feeds 6 groups of 6 inputs
    plain = conv_graph(layer)
    LowerConv({"c": LayerChoice("grouped", 2)}).run(plain)
    (unsplit,) = [n for n in plain.nodes if n.op == "Conv"]
    assert unsplit.attrs["group"] == 3 and plain.consts[unsplit.inputs[1]].shape[:2] == (78, 6)
    assert LayerChoice("grouped", 2, split=True).label() == "grouped/2+split"


def test_split_slots_prices_small_groups_at_the_kernels_4_blocks():
    from dsp_deploy.export.layouts import split_slots

    # pad 8: groups under 32 filters cost as 32. [8, 8, 96]: n=32 -> 1+1+3 groups, n=96 -> 3 groups
    # of 96: 5 * (32 * 9 + 8) = 1480 < 3 * (96 * 9 + 8) = 2616 per m
    assert split_slots([8, 8, 96], 40, 3, 8) == 32
    assert split_slots([3, 21, 18, 20], 40, 3, 8) == 24  # small groups (ResNet-20 G=4): no split (n = max)
    assert split_slots([40, 40], 48, 1, 8) == 40  # even groups: no split
