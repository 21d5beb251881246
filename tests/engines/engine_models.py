"""Tiny ONNX models (made with onnx.helper) for the engine-build tests.

The main model mimics an exported DSP layer: a Gather with constant indices permutes the input
channels, then a group=2 convolution, Relu, GlobalAveragePool, Flatten, Gemm; batch axis dynamic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RTX = "tensorrt_rtx"  # tests force this flavour: its AOT build needs no GPU


def grouped_conv_model(dtype: type = np.float32, *, batch: int | str = "N", groups: int = 2) -> onnx.ModelProto:
    """Gather(perm) -> Conv(group=groups) -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    rng = np.random.default_rng(0)
    channels, filters = 4, 8
    inits = [
        numpy_helper.from_array(np.array([3, 1, 0, 2], dtype=np.int64), "perm"),
        numpy_helper.from_array(rng.standard_normal((filters, channels // groups, 3, 3)).astype(dtype), "conv_w"),
        numpy_helper.from_array(np.zeros(filters, dtype), "conv_b"),
        numpy_helper.from_array(rng.standard_normal((10, filters)).astype(dtype), "fc_w"),
        numpy_helper.from_array(np.zeros(10, dtype), "fc_b"),
    ]
    nodes = [
        helper.make_node("Gather", ["input", "perm"], ["g"], axis=1, name="permute_in"),
        helper.make_node(
            "Conv", ["g", "conv_w", "conv_b"], ["c"], group=groups, kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"
        ),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "dsp_tiny",
        [helper.make_tensor_value_info("input", elem, [batch, channels, 8, 8])],
        [helper.make_tensor_value_info("logits", elem, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def scatter_add_model() -> onnx.ModelProto:
    """Relu -> ScatterElements(reduction='add') -> Relu: valid ONNX that TensorRT-RTX rejects."""
    inits = [
        numpy_helper.from_array(np.zeros((1, 8), np.int64), "idx"),
        numpy_helper.from_array(np.ones((1, 8), np.float32), "upd"),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["x0"], name="relu0"),
        helper.make_node("ScatterElements", ["x0", "idx", "upd"], ["s"], axis=1, reduction="add", name="scatter_add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu1"),
    ]
    graph = helper.make_graph(
        nodes,
        "scatter",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def files_in(folder: Path) -> set[str]:
    """Names of all entries (including hidden temp files) in ``folder``."""
    return {p.name for p in folder.iterdir()}
