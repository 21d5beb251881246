"""FLOPs (multiply-accumulates) and parameter counts, per layer and for the whole model.

Conv MACs of a group = filters in the group x input channels it keeps x k x k x H_out x W_out;
a layer's MACs sum over its groups. Whole-model figures add the classifier (fc) and count
BatchNorm parameters (2 per kept filter). The *DSP convention* (the paper's CIFAR tables)
counts only the convs of residual-block bodies: not the stem, downsample convs or fc.
"""
from __future__ import annotations

from dataclasses import dataclass

from dsp_deploy.models.topology import Topology
from dsp_deploy.structure.ir import ModelStructure


@dataclass(frozen=True)
class LayerCost:
    name: str
    groups: int
    macs: int
    dense_macs: int
    params: int
    dense_params: int
    in_block_body: bool


@dataclass(frozen=True)
class CostReport:
    """Totals and per-layer costs; ``*_reduction_pct`` are 100 * (1 - remaining / dense)."""

    layers: tuple[LayerCost, ...]
    flops: int
    dense_flops: int
    params: int
    dense_params: int
    dsp_flops: int
    dsp_dense_flops: int
    dsp_params: int
    dsp_dense_params: int

    @staticmethod
    def _pct(remaining: int, dense: int) -> float:
        return 100.0 * (1.0 - remaining / dense) if dense else 0.0

    @property
    def flops_reduction_pct(self) -> float:
        return self._pct(self.flops, self.dense_flops)

    @property
    def params_reduction_pct(self) -> float:
        return self._pct(self.params, self.dense_params)

    @property
    def dsp_flops_reduction_pct(self) -> float:
        return self._pct(self.dsp_flops, self.dsp_dense_flops)

    @property
    def dsp_params_reduction_pct(self) -> float:
        return self._pct(self.dsp_params, self.dsp_dense_params)

    def reduction_pct(self, metric: str) -> float:
        """FLOPs reduction by ``metric``: "dsp" (block-body convs) or "total" (whole model)."""
        return self.dsp_flops_reduction_pct if metric == "dsp" else self.flops_reduction_pct


def count_costs(structure: ModelStructure, topo: Topology | None = None) -> CostReport:
    """Per-layer and total MACs/params of ``structure`` and of its dense model."""
    from dsp_deploy.structure.validate import live_channels, topology_for

    topo = topo or topology_for(structure)
    layers = []
    for spec in topo.convs:
        layer = structure.layer(spec.name)
        k2 = spec.kernel_size**2
        dense_conv = spec.out_channels * spec.in_channels * k2
        params = layer.kernel_params() + 2 * len(layer.kept_filters)
        layers.append(LayerCost(spec.name, layer.groups, layer.macs(spec.output_size), spec.dense_macs(),
                                params, dense_conv + 2 * spec.out_channels, spec.in_block_body))
    fc_in = len(live_channels(structure, topo, f"stream:{topo.streams[-1].name}"))
    fc_params = fc_in * topo.num_classes + topo.num_classes
    dense_fc_params = topo.fc_in_features * topo.num_classes + topo.num_classes
    body = [l for l in layers if l.in_block_body]
    body_specs = {s.name: s for s in topo.convs if s.in_block_body}
    return CostReport(
        layers=tuple(layers),
        flops=sum(l.macs for l in layers) + fc_in * topo.num_classes,
        dense_flops=sum(l.dense_macs for l in layers) + topo.fc_macs(),
        params=sum(l.params for l in layers) + fc_params,
        dense_params=sum(l.dense_params for l in layers) + dense_fc_params,
        dsp_flops=sum(l.macs for l in body),
        dsp_dense_flops=sum(l.dense_macs for l in body),
        dsp_params=sum(structure.layer(l.name).kernel_params() for l in body),
        dsp_dense_params=sum(s.out_channels * s.in_channels * s.kernel_size**2 for s in body_specs.values()),
    )
