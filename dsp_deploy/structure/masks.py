"""Apply a structure to a dense torch model as weight masks (pruned weights become exact zeros).

A conv's mask is M[f, c] = 1 iff filter f belongs to a group g that reads input channel c.
For a pruned filter the following BatchNorm's gamma and beta are zeroed too, so the filter's
output is exactly 0 (as if it had been removed) in eval and train mode alike.
"""
from __future__ import annotations

import torch
from torch import nn

from dsp_deploy.errors import StructureError
from dsp_deploy.models.topology import Topology
from dsp_deploy.structure.ir import PRUNED, ConvStructure, ModelStructure


def conv_mask(layer: ConvStructure) -> torch.Tensor:
    """Boolean [out, in] mask of the kept (filter, input channel) pairs."""
    mask = torch.zeros(layer.out_channels, layer.in_channels, dtype=torch.bool)
    for g, chans in enumerate(layer.group_inputs):
        filters = list(layer.group_filters(g))
        if filters and chans:
            mask[torch.tensor(filters)[:, None], torch.tensor(chans)[None, :]] = True
    return mask


def kept_filter_mask(layer: ConvStructure) -> torch.Tensor:
    """Boolean [out] mask of filters that are not pruned."""
    return torch.tensor([g != PRUNED for g in layer.filter_groups], dtype=torch.bool)


def structure_masks(structure: ModelStructure) -> dict[str, torch.Tensor]:
    """Float masks broadcastable to each conv weight, keyed by conv name."""
    return {l.name: conv_mask(l).float()[:, :, None, None] for l in structure.layers if not l.is_dense}


@torch.no_grad()
def apply_structure(model: nn.Module, structure: ModelStructure, topo: Topology | None = None) -> nn.Module:
    """Zero the pruned weights (and pruned filters' BN affine parameters) of ``model`` in place."""
    from dsp_deploy.structure.validate import topology_for

    topo = topo or topology_for(structure)
    modules = dict(model.named_modules())
    for layer in structure.layers:
        if layer.is_dense:
            continue
        conv = modules.get(layer.name)
        if not isinstance(conv, nn.Conv2d) or tuple(conv.weight.shape[:2]) != (layer.out_channels, layer.in_channels):
            raise StructureError("model has no conv of this shape here", layer=layer.name)
        conv.weight.mul_(conv_mask(layer).to(conv.weight.dtype)[:, :, None, None])
        dropped = ~kept_filter_mask(layer)
        if conv.bias is not None:
            conv.bias[dropped] = 0
        bn = modules.get(topo.conv(layer.name).bn)
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight[dropped] = 0
            bn.bias[dropped] = 0
    return model
