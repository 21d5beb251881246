"""FLOPs (multiply-accumulates) of a DPPNet the way the paper counts them, torch-free.

The authors' code counts a DPP conv by the sparsity of the *aggregated* kernel: the masks are
shared by every (output, input) kernel of a layer, and the softmax weights are positive, so the
dynamic kernel is non-zero exactly on the union U of the P patterns:
``conv MACs = |U| * O * I * H_out * W_out``. Listed separately, as overheads:

* attention: the two 1x1 convs, ``I * h + h * P * O`` (global pooling is additions only);
* aggregation: building the per-sample kernel over the union taps, ``P * O * I * |U|`` (every
  pattern's kernel on every union tap, zeros included: what the exported graph executes).

Stem, downsample (1x1) convs and the classifier are dense and counted in full.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dsp_deploy.errors import ModelError
from dsp_deploy.models.topology import Topology

_NOT_PARAMS = {"running_mean", "running_var", "num_batches_tracked", "fixed_mask", "frozen", "threshold"}


def pattern_masks(state: Mapping[str, Any], layer: str) -> np.ndarray:
    """The binary masks (P, k, k) of DPP conv ``layer``: its fixed masks once frozen, else the
    learned rule ``mean_{o,i}(|W_p| - t_p) > 0``."""
    try:
        weight = np.asarray(state[f"{layer}.weight"], dtype=np.float64)
        threshold = np.asarray(state[f"{layer}.threshold"], dtype=np.float64)
    except KeyError:
        raise ModelError("not a DPP convolution (no weight/threshold in the state_dict)", layer=layer) from None
    if weight.ndim != 5 or threshold.shape != weight.shape[:2]:
        raise ModelError(f"DPP weight {weight.shape} / threshold {threshold.shape} shapes do not fit", layer=layer)
    if bool(np.asarray(state.get(f"{layer}.frozen", False))):
        return (np.asarray(state[f"{layer}.fixed_mask"]) > 0).astype(np.float32)
    scores = (np.abs(weight) - threshold[:, :, None, None, None]).mean(axis=(1, 2))
    return (scores > 0).astype(np.float32)


def layer_costs(state: Mapping[str, Any], layer: str, output_size: tuple[int, int]) -> dict[str, Any]:
    """One DPP conv's pattern sparsity and its conv / attention / aggregation MACs."""
    masks = pattern_masks(state, layer)
    patterns, out_ch, in_ch, k, _ = np.asarray(state[f"{layer}.weight"]).shape
    hidden = int(np.asarray(state[f"{layer}.attention.fc1.weight"]).shape[0])
    union = int(masks.max(axis=0).sum())
    hw = output_size[0] * output_size[1]
    return {
        "name": layer,
        "in_channels": int(in_ch),
        "out_channels": int(out_ch),
        "patterns": int(patterns),
        "taps_per_pattern": [int(m.sum()) for m in masks],
        "union_taps": union,
        "kernel_taps": int(k * k),
        "conv_flops": union * out_ch * in_ch * hw,
        "dense_conv_flops": k * k * out_ch * in_ch * hw,
        "attention_flops": in_ch * hidden + hidden * patterns * out_ch,
        "aggregation_flops": patterns * out_ch * in_ch * union,
    }


def is_dpp_layer(state: Mapping[str, Any], layer: str) -> bool:
    return f"{layer}.threshold" in state


def dppnet_costs(state: Mapping[str, Any], topo: Topology) -> dict[str, Any]:
    """The `info` section of a DPPNet: per-DPP-layer costs and totals (whole model, block convs)."""
    layers, plain = [], 0
    for spec in topo.convs:
        if is_dpp_layer(state, spec.name):
            layers.append(layer_costs(state, spec.name, spec.output_size))
        else:
            plain += spec.dense_macs()
    params = 0
    for key, value in state.items():
        if key.rsplit(".", 1)[-1] in _NOT_PARAMS:
            continue
        layer = key.removesuffix(".weight")
        if key.endswith(".weight") and is_dpp_layer(state, layer):
            params += int(pattern_masks(state, layer).sum()) * int(np.prod(np.asarray(value).shape[1:3]))
        else:
            params += int(np.asarray(value).size)
    fc_in = topo.streams[-1].channels
    fc = fc_in * topo.num_classes
    conv = sum(layer["conv_flops"] for layer in layers)
    dense_conv = sum(layer["dense_conv_flops"] for layer in layers)
    attention = sum(layer["attention_flops"] for layer in layers)
    aggregation = sum(layer["aggregation_flops"] for layer in layers)
    total = plain + fc + conv + attention + aggregation
    dense_total = plain + fc + dense_conv
    return {
        "description": "DPPNet FLOPs (MACs): DPP convs by the union of their patterns (the aggregated kernel's "
                       "sparsity), attention and kernel aggregation listed separately; stem, downsample and fc dense",
        "flops": total,
        "dense_flops": dense_total,
        "flops_reduction_pct": round(100.0 * (1 - total / dense_total), 4),
        "dpp_conv_flops": conv,
        "dpp_dense_conv_flops": dense_conv,
        "dpp_conv_reduction_pct": round(100.0 * (1 - conv / dense_conv), 4) if dense_conv else 0.0,
        "attention_flops": attention,
        "aggregation_flops": aggregation,
        "plain_conv_flops": plain,
        "fc_flops": fc,
        "flops_without_overheads": plain + fc + conv,
        "paper_flops_reduction_pct": round(100.0 * (1 - (plain + fc + conv) / dense_total), 4),
        "params": params,
        "layers": layers,
    }


def format_dppnet(section: dict[str, Any]) -> str:
    """Human-readable lines for `info`."""
    def m(v: float) -> str:
        return f"{v / 1e6:.2f}M"

    lines = [
        f"DPPNet FLOPs (MACs) {m(section['flops'])} of dense {m(section['dense_flops'])}: "
        f"{-section['flops_reduction_pct']:+.2f}%  (DPP convs {m(section['dpp_conv_flops'])} of "
        f"{m(section['dpp_dense_conv_flops'])}: {-section['dpp_conv_reduction_pct']:+.2f}%; "
        f"+ attention {m(section['attention_flops'])} + aggregation {m(section['aggregation_flops'])}; "
        f"stem/downsample {m(section['plain_conv_flops'])}, fc {m(section['fc_flops'])})",
        f"without attention and aggregation, as the authors' code counts: "
        f"{-section['paper_flops_reduction_pct']:+.2f}%",
        "",
        f"{'DPP layer':<24} {'shape':>12} {'taps/pattern':>14} {'union':>5} {'conv':>8} {'attn':>8} {'aggr':>8}",
    ]
    for layer in section["layers"]:
        shape = f"{layer['in_channels']}->{layer['out_channels']}"
        taps = ",".join(map(str, layer["taps_per_pattern"]))
        lines.append(f"{layer['name']:<24} {shape:>12} {taps:>14} {layer['union_taps']:>5} "
                     f"{m(layer['conv_flops']):>8} {m(layer['attention_flops']):>8} {m(layer['aggregation_flops']):>8}")
    return "\n".join(lines)
