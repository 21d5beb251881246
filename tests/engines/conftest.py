"""Fixtures for the engine-build tests: tiny ONNX files written to tmp_path."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("tensorrt_rtx")  # the real TensorRT-for-RTX builder/parser, no mocks

from .engine_models import grouped_conv_model  # noqa: E402


@pytest.fixture
def write_model(tmp_path: Path) -> Callable[[onnx.ModelProto, str], Path]:
    """Save a model under tmp_path and return its path."""

    def _write(model: onnx.ModelProto, name: str = "model.onnx") -> Path:
        path = tmp_path / name
        onnx.save(model, str(path))
        return path

    return _write


@pytest.fixture
def tiny_onnx(write_model: Callable[..., Path]) -> Path:
    """The float32 grouped-conv model with a dynamic batch axis."""
    return write_model(grouped_conv_model(), "tiny.onnx")


@pytest.fixture
def corrupt_onnx(tiny_onnx: Path) -> Path:
    """The tiny model truncated to half its bytes."""
    data = tiny_onnx.read_bytes()
    path = tiny_onnx.with_name("corrupt.onnx")
    path.write_bytes(data[: len(data) // 2])
    return path
