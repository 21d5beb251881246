"""Parsing ONNX with the real TensorRT-for-RTX parser: summaries, per-node errors, option parsing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsp_deploy.engines import (
    BatchProfile,
    NetworkFromOnnx,
    TensorInfo,
    build_engine,
    parse_batch_range,
    parse_onnx_network,
    parse_targets,
    trt_module,
)
from dsp_deploy.errors import EngineBuildError, UsageError

from .engine_models import RTX, files_in, grouped_conv_model, scatter_add_model


def test_trt_module_reports_flavour() -> None:
    module, flavour = trt_module(RTX)
    assert flavour == RTX and module.__name__ == RTX
    assert trt_module()[1] in ("tensorrt", "tensorrt_rtx")
    with pytest.raises(UsageError, match="unknown TensorRT flavour"):
        trt_module("tensorflow")


def test_summary_shows_gather_and_grouped_conv(tiny_onnx: Path) -> None:
    summary = parse_onnx_network(tiny_onnx, flavour=RTX)
    assert summary.flavour == RTX and summary.version
    assert [(t.name, t.dtype, t.shape) for t in summary.inputs] == [("input", "float32", (-1, 4, 8, 8))]
    assert [(t.name, t.dtype, t.shape) for t in summary.outputs] == [("logits", "float32", (-1, 10))]
    by_name = {layer.name: layer for layer in summary.layers}
    assert by_name["permute_in"].type == "GATHER"
    conv = by_name["conv1"]
    assert (conv.type, conv.num_groups, conv.kernel, conv.num_output_maps) == ("CONVOLUTION", 2, (3, 3), 8)
    assert conv.output_shape == (-1, 8, 8, 8)
    assert summary.conv_groups == {"conv1": 2}
    assert summary.precision == "float32"
    assert by_name["relu1"].num_groups is None  # conv fields only on convolutions


def test_fp16_model_is_strongly_typed_half(write_model) -> None:
    path = write_model(grouped_conv_model(np.float16), "fp16.onnx")
    parsed = NetworkFromOnnx(path, flavour=RTX)()
    summary = parsed.summary()
    assert summary.precision == "float16"
    assert summary.inputs[0].dtype == "float16"
    flag = parsed.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    assert parsed.network.get_flag(flag)


@pytest.mark.parametrize("make", ["truncated", "garbage", "empty"])
def test_corrupt_file_is_one_line_engine_build_error(tmp_path: Path, corrupt_onnx: Path, make: str) -> None:
    path = {"truncated": corrupt_onnx, "garbage": tmp_path / "g.onnx", "empty": tmp_path / "e.onnx"}[make]
    if make == "garbage":
        path.write_bytes(b"\x08\x07this is not an onnx file\xff\xfe")
    elif make == "empty":
        path.write_bytes(b"")
    with pytest.raises(EngineBuildError) as info:
        parse_onnx_network(path, flavour=RTX)
    message = str(info.value)
    assert "\n" not in message and path.name in message
    assert ("not a valid ONNX model" in message) or ("no graph outputs" in message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EngineBuildError, match="ONNX file not found: .*nope.onnx"):
        parse_onnx_network(tmp_path / "nope.onnx", flavour=RTX)


def test_rejected_op_names_the_node_and_writes_nothing(write_model, tmp_path: Path) -> None:
    path = write_model(scatter_add_model(), "scatter.onnx")
    before = files_in(tmp_path)
    with pytest.raises(EngineBuildError) as info:
        build_engine(path, tmp_path / "scatter.engine", flavour=RTX, opt_level=0)
    err = info.value
    assert err.layer == "scatter_add"
    assert "node 1 'scatter_add' (ScatterElements)" in str(err)
    assert "reduction" in str(err) and "\n" not in str(err)
    assert files_in(tmp_path) == before


def test_unknown_op_names_the_node(write_model) -> None:
    model = grouped_conv_model()
    model.graph.node[2].op_type = "NotAnOnnxOp"  # relu1
    path = write_model(model, "unknown.onnx")
    with pytest.raises(EngineBuildError) as info:
        parse_onnx_network(path, flavour=RTX)
    assert info.value.layer == "relu1"
    assert "node 2 'relu1' (NotAnOnnxOp)" in str(info.value)


def test_bad_group_count_names_the_conv(write_model) -> None:
    model = grouped_conv_model()
    next(a for a in model.graph.node[1].attribute if a.name == "group").i = 4  # weights say 2 groups
    path = write_model(model, "badgroup.onnx")
    with pytest.raises(EngineBuildError) as info:
        parse_onnx_network(path, flavour=RTX)
    assert info.value.layer == "conv1" and "(Conv)" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1,8,32", (1, 8, 32)), (" 2, 2 ,4", (2, 2, 4)), ("8", (8, 8, 8)), ((1, 4, 16), (1, 4, 16))],
)
def test_parse_batch_range(text, expected) -> None:
    assert parse_batch_range(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("8,4,16", "MIN <= OPT <= MAX"),
        ("1,32,16", "MIN <= OPT <= MAX"),
        ("0,1,4", "MIN must be >= 1"),
        ("1,2", "three integers"),
        ("1,2,3,4", "three integers"),
        ("a,b,c", "integers"),
        ("", "integers"),
    ],
)
def test_parse_batch_range_errors(text: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_batch_range(text)


def test_parse_targets() -> None:
    assert parse_targets("sm89,SM120, 8.6,75,sm89") == ["SM89", "SM120", "SM86", "SM75"]
    assert parse_targets(["current"]) == ["CURRENT"]
    assert parse_targets(None) is None and parse_targets("") is None
    with pytest.raises(UsageError):
        parse_targets("sm-89!")


def test_batch_profile_resolution() -> None:
    dynamic = [TensorInfo("x", "float32", (-1, 3, 32, 32))]
    assert BatchProfile(1, 4, 8).resolve(dynamic) == {"x": ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}
    with pytest.raises(EngineBuildError, match="dim 2 is dynamic"):
        BatchProfile().resolve([TensorInfo("x", "float32", (-1, 3, -1, 32))])
    with pytest.raises(EngineBuildError, match="static batch size 1"):
        BatchProfile(1, 1, 8).resolve([TensorInfo("x", "float32", (1, 3, 32, 32))])
    assert BatchProfile(1, 1, 1).resolve([TensorInfo("x", "float32", (1, 3))]) == {"x": ((1, 3), (1, 3), (1, 3))}
