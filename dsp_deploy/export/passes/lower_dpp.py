"""Lower a DPPNet convolution (pseudo-op ``DPPConv`` + its BatchNormalization) to plain ONNX
that keeps the batch axis dynamic and executes only the MACs the patterns leave.

The torch model (and the authors' code) runs a per-sample kernel as one grouped conv with the
batch folded into the groups, so the batch would be frozen into the exported Conv. Mixing the
P masked convs after the fact, ``y = sum_p a_p[n, o] * conv(x, W_p * M_p)``, keeps the batch
dynamic but executes ``sum_p |M_p|`` taps: P-fold when the patterns overlap. Neither meets the
budget. What does: the masks are shared by all (o, i) kernels of a layer, so the aggregated
kernel ``K[n, o, i, t] = sum_p a[n, p, o] * W_p[o, i, t] * M_p[t]`` is non-zero only on the
union U of the patterns, and a convolution is a GEMM over im2col columns. Per sample n:

    a[n]       = softmax_p((fc2 relu(fc1 gap(x[n])) + b2) / T)     attention, (O, P)
    K[n]       = a[n] @ Kst          Kst[o, p, (t, i)] = s_o W_p[o, i, t] M_p[t],  t in U
    cols[n]    = concat_{t in U} shift_t(pad(x[n]))                 (|U| I, Ho Wo), data movement
    y[n]       = K[n] @ cols[n] + b'                                (O, Ho Wo)

with s, b' the folded BatchNorm (the BN scale is per output channel, as the attention is, so it
folds into Kst) and 1/T folded into fc2. In ONNX: GlobalAveragePool, Flatten, Gemm, Relu, Gemm
(rows reordered o-major), Reshape (N, O, 1, P), Softmax, MatMul with Kst (1, O, P, |U| I)
broadcast over the batch, Reshape; Transpose to channels-last, Pad, one strided Slice per
union tap, Concat, Reshape; batched MatMul (N, Ho Wo, |U| I) x (N, |U| I, O) (the kernel
transposed; ``layout="nchw"`` keeps (N, O, |U| I) x (N, |U| I, Ho Wo) instead); Transpose and
Reshape to NCHW; Add b'. The ONNX Runtime profiler puts most of the remaining time in the
data movement (Pad/Slice/Concat) that a dense Conv does inside MLAS. Executed MACs per
image: ``|U| O I Ho Wo`` (the aggregated kernel's sparsity, the paper's count) +
``P O |U| I`` (aggregation) + ``I h + h P O`` (attention) -- exactly dppnet/costs.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp_deploy.errors import ExportError
from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, NoMatch, Pass, PassResult

DPP_OP = "DPPConv"  # pseudo-op of the plain graph: inputs x, weight (P,O,I,k,k), masks (P,k,k), fc1, fc2 w, fc2 b


def _channels_last(node: Node, pixels: int, out_channels: int) -> bool:
    """GEMM orientation (same MACs): channels-last im2col, (Ho Wo, |U| I) x (|U| I, O), unless the
    node asks for ``layout="nchw"``. Measured on ONNX Runtime CPU, 1 thread, DPPNet ResNet-20 at 3
    of 9 taps: channels-last 2.26 / 123 ms at batch 1 / 32 against 3.42 / 144 ms (MLAS runs the
    small filter dimension best as the GEMM's last one)."""
    return node.attrs.get("layout", "nhwc") != "nchw"


@dataclass
class DPPConvBatchNorm(Match):
    """The DPPConv ``node`` and the BatchNormalization ``bn`` it alone feeds."""

    bn: Node


class LowerDPPConv(Pass[DPPConvBatchNorm]):
    name = "lower-dpp"
    ops = (DPP_OP,)

    def check(self, graph: Graph, node: Node) -> DPPConvBatchNorm | NoMatch:
        users = graph.consumers(node.outputs[0])
        if len(users) != 1 or users[0].op != "BatchNormalization" or graph.is_graph_output(node.outputs[0]):
            return NoMatch("a DPPConv must feed exactly one BatchNormalization")
        if any(graph.const_value(t) is None for t in node.inputs[1:] + users[0].inputs[1:5]):
            return NoMatch("DPPConv/BatchNormalization parameters are not constants")
        return DPPConvBatchNorm(node, users[0])

    def run(self, graph: Graph) -> PassResult:
        """Lower every DPPConv; ExportError naming the layer of one that cannot be lowered."""
        result = super().run(graph)
        if result.skipped:
            name, reason = next(iter(result.skipped.items()))
            layer = next((n.layer for n in graph.nodes if n.name == name and n.layer), name)
            raise ExportError(reason, layer=layer)
        return result

    def rewrite(self, graph: Graph, match: DPPConvBatchNorm) -> None:
        node, bn = match.node, match.bn
        layer = node.layer
        weight, masks, fc1, fc2_w, fc2_b = (graph.consts[t].astype(np.float64) for t in node.inputs[1:])
        patterns, out_ch, in_ch, k, _ = weight.shape
        gamma, beta, mean, var = (graph.consts[t].astype(np.float64) for t in bn.inputs[1:5])
        scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        bias = beta - mean * scale
        stride, pad = int(node.attrs["stride"]), int(node.attrs["padding"])
        ho, wo = (int(v) for v in node.attrs["out_size"])
        temperature = float(node.attrs["temperature"])
        union = [t for t in range(k * k) if masks.reshape(patterns, -1)[:, t].any()]
        if not union:
            raise ExportError("every pattern mask is empty (the conv is constant); cannot lower it", layer=layer)
        taps = len(union)
        # static kernels over the union taps, BN scale folded: (O, P, |U| * I), column (t, i)
        masked = weight * masks[:, None, None] * scale[None, :, None, None, None]
        kst = masked.reshape(patterns, out_ch, in_ch, k * k)[..., union]         # (P, O, I, U)
        kst = kst.transpose(1, 0, 3, 2).reshape(1, out_ch, patterns, taps * in_ch)
        # attention, fc2 rows reordered o-major and divided by T
        order = (np.arange(patterns)[None, :] * out_ch + np.arange(out_ch)[:, None]).reshape(-1)
        w2 = fc2_w.reshape(patterns * out_ch, -1)[order] / temperature
        b2 = fc2_b.reshape(-1)[order] / temperature

        def add(op: str, inputs: list[str], **attrs: object) -> str:
            return graph.add(op, inputs, attrs=attrs, layer=layer, before=bn).outputs[0]

        def const(value: np.ndarray, hint: str, dtype: type = np.float32) -> str:
            return graph.const(np.asarray(value, dtype=dtype), f"{layer}.{hint}")

        x = node.inputs[0]
        pooled = add("Flatten", [add("GlobalAveragePool", [x])], axis=1)
        hidden = add("Relu", [add("Gemm", [pooled, const(fc1.reshape(fc1.shape[0], -1), "attn.fc1")], transB=1)])
        logits = add("Gemm", [hidden, const(w2, "attn.fc2.weight"), const(b2, "attn.fc2.bias")], transB=1)
        attn = add("Softmax", [add("Reshape", [logits, const([0, out_ch, 1, patterns], "attn.shape", np.int64)])],
                   axis=-1)
        kernel = add("MatMul", [attn, const(kst, "static_kernels")])                  # (N, O, 1, U*I)
        kernel = add("Reshape", [kernel, const([0, out_ch, taps * in_ch], "kernel.shape", np.int64)])
        if _channels_last(node, ho * wo, out_ch):  # the GEMM as (Ho Wo, |U| I) x (|U| I, O)
            kernel = add("Transpose", [kernel], perm=[0, 2, 1])
            src = add("Transpose", [x], perm=[0, 2, 3, 1])
            axes, pads, concat_axis = [1, 2], [0, pad, pad, 0, 0, pad, pad, 0], 3
        else:                                              # the GEMM as (O, |U| I) x (|U| I, Ho Wo)
            src, axes, pads, concat_axis = x, [2, 3], [0, 0, pad, pad, 0, 0, pad, pad], 1
        if pad:
            src = add("Pad", [src, const(pads, "pads", np.int64)])
        cols = []
        for t in union:
            ki, kj = divmod(t, k)
            cols.append(add("Slice", [src, const([ki, kj], "starts", np.int64),
                                      const([ki + (ho - 1) * stride + 1, kj + (wo - 1) * stride + 1], "ends", np.int64),
                                      const(axes, "axes", np.int64), const([stride, stride], "steps", np.int64)]))
        stacked = cols[0] if taps == 1 else add("Concat", cols, axis=concat_axis)
        if concat_axis == 3:
            stacked = add("Reshape", [stacked, const([0, ho * wo, taps * in_ch], "cols.shape", np.int64)])
            y = add("Transpose", [add("MatMul", [stacked, kernel])], perm=[0, 2, 1])             # (N, O, Ho*Wo)
        else:
            stacked = add("Reshape", [stacked, const([0, taps * in_ch, ho * wo], "cols.shape", np.int64)])
            y = add("MatMul", [kernel, stacked])                                                # (N, O, Ho*Wo)
        y = add("Reshape", [y, const([0, out_ch, ho, wo], "out.shape", np.int64)])
        out = add("Add", [y, const(bias.reshape(1, out_ch, 1, 1), "bias")])
        graph.replace_uses(bn.outputs[0], out)
        graph.remove(bn)
        graph.remove(node)
