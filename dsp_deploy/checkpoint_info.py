"""Summaries of a checkpoint or structure: what `dsp-deploy info` prints."""
from __future__ import annotations

import os
from typing import Any

from dsp_deploy.errors import CheckpointError
from dsp_deploy.models.topology import Topology
from dsp_deploy.structure import ModelStructure, count_costs, load_structure, topology_for
from dsp_deploy.utils.jsonfile import summary_document


def load_any_structure(path: str) -> tuple[ModelStructure, dict[str, Any]]:
    """The structure in a checkpoint (.pt) or a structure JSON file, plus the checkpoint's metadata."""
    if not os.path.isfile(path):
        raise CheckpointError(f"file not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith(b"{"):
        return load_structure(path), {}
    from dsp_deploy.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    return checkpoint.structure, checkpoint.metadata


def _round(value: float) -> float:
    return round(value, 4)


def summarize(structure: ModelStructure, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `info --json` document: totals, the DSP-paper convention, and one entry per conv."""
    topo: Topology = topology_for(structure)
    costs = count_costs(structure, topo)
    layers = []
    for spec, cost in zip(topo.convs, costs.layers):
        layer = structure.layer(spec.name)
        layers.append({
            "name": spec.name,
            "role": spec.role,
            "in_channels": layer.in_channels,
            "out_channels": layer.out_channels,
            "kernel_size": layer.kernel_size,
            "stride": layer.stride,
            "groups": layer.groups,
            "filters_per_group": [len(layer.group_filters(g)) for g in range(layer.groups)],
            "inputs_per_group": [len(c) for c in layer.group_inputs],
            "pruned_filters": layer.filter_groups.count(-1),
            "flops": cost.macs,
            "dense_flops": cost.dense_macs,
            "params": cost.params,
            "flops_reduction_pct": _round(100.0 * (1 - cost.macs / cost.dense_macs)) if cost.dense_macs else 0.0,
        })
    return {
        "model": structure.model,
        "num_classes": structure.num_classes,
        "input_size": list(structure.input_size),
        "groups": structure.max_groups,
        "method": (structure.metadata or {}).get("method", "dense" if costs.flops == costs.dense_flops else "unknown"),
        "flops": costs.flops,
        "params": costs.params,
        "dense_flops": costs.dense_flops,
        "dense_params": costs.dense_params,
        "flops_reduction_pct": _round(costs.flops_reduction_pct),
        "params_reduction_pct": _round(costs.params_reduction_pct),
        "dsp_convention": {
            "description": "only the convs of residual-block bodies (not stem, downsample or fc), "
                           "as the DSP paper counts",
            "flops": costs.dsp_flops,
            "dense_flops": costs.dsp_dense_flops,
            "params": costs.dsp_params,
            "dense_params": costs.dsp_dense_params,
            "flops_reduction_pct": _round(costs.dsp_flops_reduction_pct),
            "params_reduction_pct": _round(costs.dsp_params_reduction_pct),
        },
        "metadata": metadata or {},
        "layers": layers,
    }


def _human(count: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(count)


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable form of `summarize`'s document."""
    dsp = summary["dsp_convention"]
    lines = [
        f"model {summary['model']} ({summary['num_classes']} classes, input {summary['input_size'][0]}x"
        f"{summary['input_size'][1]}), groups {summary['groups']}, method {summary['method']}",
        f"FLOPs (MACs) {_human(summary['flops'])} of {_human(summary['dense_flops'])}: "
        f"{-summary['flops_reduction_pct']:+.2f}%   params {_human(summary['params'])} of "
        f"{_human(summary['dense_params'])}: {-summary['params_reduction_pct']:+.2f}%",
        f"DSP-paper convention (block convs only): FLOPs -{dsp['flops_reduction_pct']:.2f}%, "
        f"params -{dsp['params_reduction_pct']:.2f}%",
        "",
        f"{'layer':<26} {'shape':>13} {'G':>2} {'filters/group':>16} {'inputs/group':>16} {'FLOPs':>8} {'-%':>6}",
    ]
    for layer in summary["layers"]:
        shape = f"{layer['in_channels']}->{layer['out_channels']} k{layer['kernel_size']}"
        lines.append(
            f"{layer['name']:<26} {shape:>13} {layer['groups']:>2} "
            f"{','.join(map(str, layer['filters_per_group'])):>16} {','.join(map(str, layer['inputs_per_group'])):>16} "
            f"{_human(layer['flops']):>8} {layer['flops_reduction_pct']:>6.1f}")
    if "dppnet" in summary:
        from dsp_deploy.dppnet.costs import format_dppnet

        lines += ["", format_dppnet(summary["dppnet"])]
    return "\n".join(lines)


def add_dppnet_section(summary: dict[str, Any], path: str) -> None:
    """For a DPPNet checkpoint: add the `dppnet` section (pattern FLOPs, see dppnet/costs.py) and
    make its totals the summary's FLOPs (the dense structure alone would report 9 taps per kernel)."""
    from dsp_deploy.models import get_config

    if not get_config(summary["model"]).is_dppnet:
        return
    from dsp_deploy.checkpoint import load_checkpoint
    from dsp_deploy.dppnet.costs import dppnet_costs

    with open(path, "rb") as handle:
        if handle.read(64).lstrip().startswith(b"{"):
            raise CheckpointError(f"{path}: a DPPNet's FLOPs depend on its learned patterns; pass the checkpoint")
    checkpoint = load_checkpoint(path)
    section = dppnet_costs(checkpoint.state_dict, topology_for(checkpoint.structure))
    summary["dppnet"] = section
    summary["method"] = "dppnet"
    summary["flops"] = section["flops"]
    summary["flops_reduction_pct"] = section["flops_reduction_pct"]
    summary["params"] = section["params"]
    summary["params_reduction_pct"] = _round(100.0 * (1 - section["params"] / summary["dense_params"]))


def summary_json(summary: dict[str, Any]) -> str:
    """The `info --json` document (format ``dsp-deploy/info``)."""
    return summary_document("info", summary)
