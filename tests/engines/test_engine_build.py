"""Ahead-of-time engine builds with the real TensorRT-for-RTX builder (no GPU needed)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dsp_deploy.engines import EngineManifest, build_engine, manifest_path_for
from dsp_deploy.errors import EngineBuildError, UsageError

from .engine_models import RTX, files_in, grouped_conv_model


def test_build_writes_plan_and_manifest(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "engines" / "tiny.engine"
    manifest = build_engine(tiny_onnx, out, batch=(1, 4, 16), flavour=RTX, opt_level=0)
    plan = out.read_bytes()
    assert len(plan) > 1000
    data = json.loads(manifest_path_for(out).read_text())
    assert manifest_path_for(out).name == "tiny.engine.json"
    assert data["format"] == "dsp-deploy/engine-manifest" and data["format_version"] == 1
    assert data["flavour"] == RTX and data["version"] == manifest.version != ""
    assert data["engine"] == "tiny.engine"
    assert data["engine_bytes"] == len(plan)
    assert data["engine_sha256"] == hashlib.sha256(plan).hexdigest()
    assert data["source_onnx_sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert data["precision"] == "float32" and data["strongly_typed"] is True
    assert data["inputs"] == [
        {
            "name": "input",
            "dtype": "float32",
            "shape": [-1, 4, 8, 8],
            "profile": {"min": [1, 4, 8, 8], "opt": [4, 4, 8, 8], "max": [16, 4, 8, 8]},
        }
    ]
    assert data["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 10]}]
    assert data["batch"] == {"min": 1, "opt": 4, "max": 16}
    assert data["targets"] == ["DEFAULT"]
    assert data["builder_optimization_level"] == 0
    # Without a GPU the RTX plan cannot be deserialized, so the network layers stand in.
    assert data["engine_layers"] is None and "GPU" in data["engine_layers_note"]
    assert EngineManifest.load(out).to_dict() == data
    assert not [name for name in files_in(out.parent) if name.endswith(".tmp")]


def test_manifest_reports_conv_group_counts(write_model, tmp_path: Path) -> None:
    path = write_model(grouped_conv_model(groups=4), "g4.onnx")
    manifest = build_engine(path, tmp_path / "g4.engine", flavour=RTX, opt_level=0)
    assert manifest.conv_groups == {"conv1": 4}
    convs = [layer for layer in manifest.network_layers if layer["type"] == "CONVOLUTION"]
    assert convs == [
        {
            "index": convs[0]["index"],
            "name": "conv1",
            "type": "CONVOLUTION",
            "output_dtype": "float32",
            "output_shape": [-1, 8, 8, 8],
            "num_groups": 4,
            "kernel": [3, 3],
            "num_output_maps": 8,
            "stride": [1, 1],
        }
    ]
    types = [layer["type"] for layer in manifest.network_layers]
    assert "GATHER" in types and "MATRIX_MULTIPLY" in types
    assert manifest.batch == {"min": 1, "opt": 1, "max": 32}  # the default range


def test_fp16_model_builds(write_model, tmp_path: Path) -> None:
    path = write_model(grouped_conv_model(np.float16), "fp16.onnx")
    manifest = build_engine(path, tmp_path / "fp16.engine", targets="sm86,sm89", flavour=RTX, opt_level=0)
    assert manifest.precision == "float16"
    assert manifest.inputs[0]["dtype"] == manifest.outputs[0]["dtype"] == "float16"
    assert manifest.targets == ["SM86", "SM89"]
    assert (tmp_path / "fp16.engine").stat().st_size == manifest.engine_bytes


def test_static_batch_model_defaults_to_its_batch(write_model, tmp_path: Path) -> None:
    path = write_model(grouped_conv_model(batch=2), "static.onnx")
    manifest = build_engine(path, tmp_path / "static.engine", flavour=RTX, opt_level=0)
    assert manifest.batch == {"min": 2, "opt": 2, "max": 2}
    with pytest.raises(EngineBuildError, match="static batch size 2"):
        build_engine(path, tmp_path / "other.engine", batch=(1, 2, 8), flavour=RTX, opt_level=0)
    assert not (tmp_path / "other.engine").exists()


def test_failed_build_names_layer_and_keeps_old_files(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.engine"
    build_engine(tiny_onnx, out, flavour=RTX, opt_level=0)
    old_plan, old_manifest = out.read_bytes(), manifest_path_for(out).read_text()
    before = files_in(tmp_path)
    # TensorRT-RTX cannot compile an FP32 GEMM for Turing: the builder returns no engine.
    with pytest.raises(EngineBuildError) as info:
        build_engine(tiny_onnx, out, targets=["sm75"], flavour=RTX, opt_level=0)
    assert info.value.layer == "fc"
    assert "SM75" in str(info.value) and "\n" not in str(info.value)
    assert files_in(tmp_path) == before
    assert out.read_bytes() == old_plan and manifest_path_for(out).read_text() == old_manifest


def test_unknown_target_and_bad_options(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="SM99.*choose"):
        build_engine(tiny_onnx, tmp_path / "a.engine", targets="sm99", flavour=RTX)
    with pytest.raises(UsageError, match="overwrite the ONNX input"):
        build_engine(tiny_onnx, tiny_onnx, flavour=RTX)
    with pytest.raises(UsageError, match="opt-level"):
        build_engine(tiny_onnx, tmp_path / "a.engine", opt_level=9, flavour=RTX)
    assert not list(tmp_path.glob("a.engine*"))


def test_timing_cache_is_ignored_by_rtx(tiny_onnx: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    manifest = build_engine(tiny_onnx, tmp_path / "t.engine", timing_cache=cache, flavour=RTX, opt_level=0)
    assert manifest.timing_cache is None and not cache.exists()
