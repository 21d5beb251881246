"""The small ONNX models a latency table times: one conv site sample (Gather of the kept inputs,
Conv with G groups, Relu, as the exporter lowers a group-pruned conv) and the fixed parts."""

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
