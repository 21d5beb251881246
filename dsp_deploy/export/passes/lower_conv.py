"""Lower a group-pruned Conv (masked dense weights) into what its structure allows.

For a conv y = W * x with groups g (filters F_g, kept inputs I_g), see layouts.py:

- grouped:  y' = Conv_group=G(Gather(x, concat_g I_g (padded to m)), W_grouped)
- branches: y' = Concat_g(Conv(Gather(x, I_g), W[F_g][:, I_g]))
- union:    y' = Conv(Gather(x, U), W[kept][:, U]),  U = union_g I_g
- dense:    unchanged.

y' holds the kept filters in a new order; a restore Gather (y = Gather(Pad(y'), inv), inv[f]
= position of filter f, or a zero channel for pruned filters) gives back exactly y, so the
graph is equivalent after this pass. Later passes move or fold the restore gathers away.
With ``aligned`` (union only) the conv writes every filter in model order and needs none.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.graph import Graph, Node, index_array
from dsp_deploy.export.layouts import ConvLayout, active_groups, branch_layouts, grouped_layout, union_layout
from dsp_deploy.export.passes.base import Match, NoMatch, Pass
from dsp_deploy.export.plan import LayerChoice
from dsp_deploy.structure import ConvStructure


def gather(graph: Graph, x: str, index: list[int] | None, before: Node, layer: str | None) -> str:
    """Gather(x, index, axis=1) inserted before ``before`` (x itself when index is None)."""
    if index is None:
        return x
    node = graph.add("Gather", [x, graph.const(index_array(index), f"{layer}.idx")], attrs={"axis": 1},
                     layer=layer, before=before)
    return node.outputs[0]


def zero_pad_channels(graph: Graph, x: str, count: int, before: Node, layer: str | None) -> str:
    """Append ``count`` zero channels (Pad on axis 1; works with a dynamic batch)."""
    pads = graph.const(np.array([0, 0, 0, 0, 0, count, 0, 0], np.int64), f"{layer}.pads")
    return graph.add("Pad", [x, pads], attrs={"mode": "constant"}, layer=layer, before=before).outputs[0]


def emit_conv(graph: Graph, x: str, layout: ConvLayout, template: Node, layer: str | None) -> str:
    """The Conv of ``layout`` on Gather(x) (attributes copied from ``template``)."""
    xin = gather(graph, x, layout.in_index, template, layer)
    attrs = dict(template.attrs, group=layout.group)
    node = graph.add("Conv", [xin, graph.const(layout.weight, f"{layer}.w"), graph.const(layout.bias, f"{layer}.b")],
                     attrs=attrs, layer=layer, name=graph.fresh(f"{layer}"), before=template)
    return node.outputs[0]


def restore(graph: Graph, y: str, layout: ConvLayout, out_channels: int, before: Node, layer: str | None,
            output: str) -> None:
    """Gather the lowered output back into the model's filter order, named ``output``."""
    index, needs_pad = layout.restore_index(out_channels)
    src = zero_pad_channels(graph, y, 1, before, layer) if needs_pad else y
    graph.add("Gather", [src, graph.const(index_array(index), f"{layer}.restore")], attrs={"axis": 1},
              layer=layer, before=before, output=output)


@dataclass
class PrunedConv(Match):
    """The Conv ``node`` (constant ``weight``, ``bias``) of a pruned ``layer``, and how the plan
    lowers it."""

    choice: LayerChoice
    layer: ConvStructure
    weight: np.ndarray
    bias: np.ndarray


class LowerConv(Pass[PrunedConv]):
    """Rewrite every Conv whose layer has a non-dense choice in ``choices``."""

    name = "lower-conv"
    ops = ("Conv",)

    def __init__(self, choices: Mapping[str, LayerChoice]) -> None:
        self.choices = choices

    def check(self, graph: Graph, node: Node) -> PrunedConv | NoMatch:
        choice = self.choices.get(node.layer or "")
        if choice is None or choice.lowering == "dense":
            return NoMatch("dense by plan")
        if node.layer in graph.context.lowered:
            return NoMatch("already lowered")
        layer = graph.context.structure.get(node.layer or "")
        if layer is None:
            return NoMatch("no structure entry for this layer")
        if node.attrs.get("group", 1) != 1 or len(node.inputs) < 3:
            return NoMatch("expects a plain Conv with folded bias (run fold-batchnorm first)")
        weight = graph.const_value(node.inputs[1])
        if weight is None or weight.shape[:2] != (layer.out_channels, layer.in_channels):
            return NoMatch("weight shape does not match the structure")
        if not active_groups(layer):
            return NoMatch("every filter is pruned")
        if layer.is_dense and choice.lowering != "union":
            return NoMatch("layer is not pruned")
        return PrunedConv(node, choice, layer, weight, graph.consts[node.inputs[2]])

    def rewrite(self, graph: Graph, match: PrunedConv) -> None:
        node, choice, layer, weight, bias = match.node, match.choice, match.layer, match.weight, match.bias
        x, output = node.inputs[0], node.outputs[0]
        if choice.lowering == "grouped":
            layout = grouped_layout(layer, weight, bias, pad=choice.pad, split=choice.split)
            restore(graph, emit_conv(graph, x, layout, node, node.layer), layout, layer.out_channels, node,
                    node.layer, output)
        elif choice.lowering == "union":
            layout = union_layout(layer, weight, bias, pad=choice.pad, in_pad=choice.in_pad, aligned=choice.aligned)
            y = emit_conv(graph, x, layout, node, node.layer)
            if choice.aligned:
                graph.replace_uses(output, y)
            else:
                restore(graph, y, layout, layer.out_channels, node, node.layer, output)
        elif choice.lowering == "branches":
            parts = branch_layouts(layer, weight, bias)
            outs = [emit_conv(graph, x, part, node, node.layer) for part in parts]
            cat = outs[0] if len(outs) == 1 else graph.add("Concat", outs, attrs={"axis": 1}, layer=node.layer,
                                                           before=node).outputs[0]
            out_pos = {f: p for part in parts for f, p in part.out_pos.items()}
            total = sum(part.out_channels for part in parts)
            merged = ConvLayout(None, np.zeros((total, 1, 1, 1), np.float32), np.zeros(total, np.float32), 1,
                                out_pos, None)
            restore(graph, cat, merged, layer.out_channels, node, node.layer, output)
        graph.context.lowered.add(node.layer or "")
        graph.remove(node)
