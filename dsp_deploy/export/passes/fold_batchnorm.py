"""Fold an inference BatchNormalization into the Conv that feeds it.

    BN(Conv(x, W, b)) = s * (W * x + b - mean) + beta,  s = gamma / sqrt(var + eps)
                      = (s[:, None, None, None] * W) * x + (s * (b - mean) + beta)

so W' = s * W (per output filter) and b' = s * (b - mean) + beta. For a pruned filter the
masked checkpoint has W = 0 and gamma = beta = 0, hence W' = 0 and b' = 0: its output is
exactly zero, which later passes rely on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, NoMatch, Pass


@dataclass
class ConvBatchNorm(Match):
    """``node`` is the BatchNormalization, ``conv`` the Conv feeding only it."""

    conv: Node


class FoldBatchNorm(Pass[ConvBatchNorm]):
    name = "fold-batchnorm"
    ops = ("BatchNormalization",)

    def check(self, graph: Graph, node: Node) -> ConvBatchNorm | NoMatch:
        conv = graph.producer(node.inputs[0])
        if conv is None or conv.op != "Conv":
            return NoMatch("input is not produced by a Conv")
        if graph.single_consumer(conv.outputs[0]) is not node:
            return NoMatch("the Conv output has other consumers")
        if any(graph.const_value(t) is None for t in node.inputs[1:5]):
            return NoMatch("BatchNormalization parameters are not constants")
        if graph.const_value(conv.inputs[1]) is None:
            return NoMatch("Conv weight is not a constant")
        if node.attrs.get("training_mode", 0):
            return NoMatch("training-mode BatchNormalization")
        return ConvBatchNorm(node, conv)

    def rewrite(self, graph: Graph, match: ConvBatchNorm) -> None:
        node, conv = match.node, match.conv
        gamma, beta, mean, var = (graph.consts[t].astype(np.float64) for t in node.inputs[1:5])
        scale = gamma / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        weight = graph.consts[conv.inputs[1]].astype(np.float64)
        bias = graph.consts[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 else np.zeros(len(scale))
        new_w = (weight * scale[:, None, None, None]).astype(np.float32)
        new_b = (scale * (bias - mean) + beta).astype(np.float32)
        conv.inputs = [conv.inputs[0], graph.const(new_w, f"{conv.layer}.w"), graph.const(new_b, f"{conv.layer}.b")]
        graph.replace_uses(node.outputs[0], conv.outputs[0])
        graph.remove(node)
