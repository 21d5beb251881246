"""Tiny real models for the bench tests: ONNX graphs built with onnx.helper, a TensorRT plan
built with the real tensorrt_rtx builder (no GPU needed to build), a TorchScript module."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def conv_weight(out_channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((out_channels, 3, 3, 3)).astype(np.float32)


def make_conv_onnx(path: Path, out_channels: int = 4, batch: int | str = "N", relu: bool = False,
                   size: int = 8, seed: int = 0) -> Path:
    """Conv(3 -> out_channels, 3x3, pad 1) [+ Relu] on a [batch, 3, size, size] float input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(conv_weight(out_channels, seed), "W")
    nodes = [helper.make_node("Conv", ["x", "W"], ["c" if relu else "y"], pads=[1, 1, 1, 1])]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, out_channels, size, size])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def make_onnx():
    """The ``make_conv_onnx`` builder, for tests that need their own variants."""
    return make_conv_onnx


@pytest.fixture
def conv_weights():
    """The ``conv_weight`` generator (same seed -> same weights as ``make_conv_onnx``)."""
    return conv_weight


@pytest.fixture
def onnx_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two different dynamic-batch ONNX models."""
    return (make_conv_onnx(tmp_path / "small.onnx", 4),
            make_conv_onnx(tmp_path / "wide.onnx", 16, relu=True, seed=1))


@pytest.fixture
def engine_file(tmp_path: Path) -> Path:
    """A real TensorRT-RTX plan (batch profile 1..8) and its manifest, both written by the engine
    stage's ``build_engine`` (so the manifest is exactly what ``EngineManifest`` reads)."""
    pytest.importorskip("tensorrt_rtx")
    from dsp_deploy.engines import build_engine

    engine = tmp_path / "eng.engine"
    build_engine(make_conv_onnx(tmp_path / "eng.onnx", 4), engine, batch=(1, 4, 8), flavour="tensorrt_rtx",
                 inspect=False)
    return engine
