"""FLOPs (MACs) and parameter counts against hand computation and torch's own counts."""
from __future__ import annotations

import pytest

from dsp_deploy.models import create, topology
from dsp_deploy.structure import PRUNED, ConvStructure, count_costs, dense_structure


def test_ungrouped_layer_by_hand():
    layer = ConvStructure.dense("c", 16, 32, 3, 1)
    assert layer.macs((8, 8)) == 32 * 16 * 9 * 64
    assert layer.kernel_params() == 32 * 16 * 9


def test_grouped_layer_by_hand():
    # group 0: 3 filters reading 5 channels; group 1: 2 filters reading 2 channels; 1 pruned filter
    layer = ConvStructure("c", 8, 6, 3, 1, 2, (0, 1, 0, PRUNED, 0, 1), ((0, 1, 2, 3, 4), (6, 7)))
    assert layer.kernel_params() == (3 * 5 + 2 * 2) * 9
    assert layer.macs((4, 5)) == (3 * 5 + 2 * 2) * 9 * 20


def test_channel_pruning_is_g1_case():
    layer = ConvStructure("c", 8, 4, 1, 1, 1, (0, PRUNED, 0, 0), ((1, 2, 5),))
    assert layer.macs((2, 2)) == 3 * 3 * 4


@pytest.mark.parametrize("name, macs", [("resnet50", 4_089_184_256), ("resnet18", 1_814_073_344)])
def test_imagenet_dense_macs_match_published(name, macs):
    assert count_costs(dense_structure(topology(name))).dense_flops == macs


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet50"])
def test_dense_params_equal_torch_parameter_count(name):
    model = create(name)
    costs = count_costs(dense_structure(topology(name)))
    assert costs.params == costs.dense_params == sum(p.numel() for p in model.parameters())
    assert costs.flops_reduction_pct == 0.0


def test_pruned_layer_counts_into_totals_and_dsp_convention():
    topo = topology("resnet20")
    s = dense_structure(topo)
    layer = s.layer("layer1.0.conv1")
    half = layer.replace(groups=2, filter_groups=[0] * 8 + [1] * 8, group_inputs=[list(range(8)), list(range(8, 16))])
    costs = count_costs(s.with_layers({half.name: half}), topo)
    saved = 16 * 16 * 9 * 32 * 32 // 2
    assert costs.dense_flops - costs.flops == saved
    assert costs.dsp_dense_flops - costs.dsp_flops == saved
    # stem, downsample and fc are outside the DSP convention
    assert costs.dsp_dense_flops == sum(c.dense_macs() for c in topo.convs if c.role in ("inner", "block_out"))
