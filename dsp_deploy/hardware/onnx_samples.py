"""The small ONNX models a latency table times: one conv site sample (Gather of the kept inputs,
Conv with G groups, Relu, as the exporter lowers a group-pruned conv), the stream write of a grouped
block output, and the fixed parts."""

from __future__ import annotations

from typing import Any

import numpy as np

from dsp_deploy.models.topology import Topology


def _serialize(graph: Any) -> bytes:
    from dsp_deploy.export.onnx_io import to_model

    return to_model(graph).SerializeToString()


def conv_sample(site: dict[str, Any], groups: int, ci: int, co: int, batch: int, seed: int = 0) -> bytes:
    """Gather(x, G*ci channels) -> Conv(group=G, G*co filters of ci x k x k) -> Relu on a
    ``site`` input of ``ci_max`` channels (no Gather when one group reads every channel)."""
    from dsp_deploy.export.graph import Graph, ValueInfo

    rng = np.random.default_rng(seed)
    c_in, (h, w), k = site["ci_max"], site["in_hw"], site["kernel"]
    graph = Graph(
        [ValueInfo("x", "float32", (batch, c_in, h, w))], [ValueInfo("y", "float32", (batch, None, None, None))]
    )
    x = "x"
    if not (groups == 1 and ci == c_in):
        index = (np.arange(groups * ci) * 7919 % c_in).astype(np.int64)  # spread, repeats across groups
        x = graph.add("Gather", [x, graph.const(index)], attrs={"axis": 1}).outputs[0]
    weight = (rng.standard_normal((groups * co, ci, k, k)) * 0.05).astype(np.float32)
    conv = graph.add(
        "Conv",
        [x, graph.const(weight), graph.const(np.zeros(groups * co, np.float32))],
        attrs={"kernel_shape": [k, k], "strides": [site["stride"]] * 2, "pads": [site["padding"]] * 4, "group": groups},
    )
    graph.add("Relu", conv.outputs, output="y")
    return _serialize(graph)


def stream_write_sample(channels: int, hw: tuple[int, int], batch: int) -> bytes:
    """What a grouped block-output conv adds to writing the residual stream, as the exporter lowers it:
    its output (half the stream's channels) padded with a zero channel, gathered into the stream's
    order (the channels it does not write read the zero), added to the stream and rectified. A one-group
    block output writes the stream in order and ONNX Runtime fuses the Add and Relu into the conv."""
    from dsp_deploy.export.graph import Graph, ValueInfo

    h, w = hw
    written = max(1, channels // 2)
    graph = Graph(
        [ValueInfo("y", "float32", (batch, written, h, w)), ValueInfo("s", "float32", (batch, channels, h, w))],
        [ValueInfo("out", "float32", (batch, channels, h, w))],
    )
    pads = graph.const(np.array([0, 0, 0, 0, 0, 1, 0, 0], np.int64))
    padded = graph.add("Pad", ["y", pads]).outputs[0]
    index = np.full(channels, written, np.int64)  # unwritten channels read the zero channel
    index[::2] = np.arange(written)[: len(index[::2])]
    restored = graph.add("Gather", [padded, graph.const(index)], attrs={"axis": 1}).outputs[0]
    total = graph.add("Add", [restored, "s"]).outputs[0]
    graph.add("Relu", [total], output="out")
    return _serialize(graph)


def fixed_parts(topo: Topology, batch: int, stem_pool: bool) -> dict[str, bytes]:
    """The parts no pruning changes much: max-pool after the stem (ImageNet) and global average
    pooling + classifier, at their dense widths."""
    from dsp_deploy.export.graph import Graph, ValueInfo

    parts = {}
    last = topo.streams[-1].channels
    h, w = topo.convs[-1].output_size
    head = Graph(
        [ValueInfo("x", "float32", (batch, last, h, w))], [ValueInfo("y", "float32", (batch, topo.num_classes))]
    )
    pooled = head.add("GlobalAveragePool", ["x"]).outputs[0]
    flat = head.add("Flatten", [pooled], attrs={"axis": 1}).outputs[0]
    fc = np.random.default_rng(0).standard_normal((topo.num_classes, last)).astype(np.float32) * 0.05
    head.add(
        "Gemm",
        [flat, head.const(fc), head.const(np.zeros(topo.num_classes, np.float32))],
        attrs={"transB": 1},
        output="y",
    )
    parts["head"] = _serialize(head)
    if stem_pool:
        stem = topo.convs[0]
        sh, sw = stem.output_size
        pool = Graph(
            [ValueInfo("x", "float32", (batch, stem.out_channels, sh, sw))],
            [ValueInfo("y", "float32", (batch, stem.out_channels, None, None))],
        )
        pool.add("MaxPool", ["x"], attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, output="y")
        parts["maxpool"] = _serialize(pool)
    return parts
