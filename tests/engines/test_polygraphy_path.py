"""The TensorRT path and the comparator go through Polygraphy: a TensorRT-for-RTX engine is built
from an exported DSP model by Polygraphy's loaders (no GPU needed), with its RTX switch set in
code; Polygraphy's Comparator compares our runners (ONNX Runtime vs PyTorch here; TensorRT vs
ONNX Runtime where a GPU is present)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsp_deploy.checkpoint import build_model
from dsp_deploy.export import export_onnx
from dsp_deploy.runtime.comparator import compare_runners
from dsp_deploy.runtime.ort import OrtRunner
from dsp_deploy.runtime.torch_runner import TorchRunner
from dsp_deploy.runtime.trt_engine import build_engine
from dsp_deploy.runtime.trt_runner import TrtRunner
from dsp_deploy.utils.machine import cuda_gpus

from .engine_models import RTX

pytest.importorskip("polygraphy")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from export.helpers import tiny_checkpoint

    ck = tiny_checkpoint("resnet20", groups=2, size=16, seed=5)
    path = tmp_path_factory.mktemp("dsp") / "dsp.onnx"
    export_onnx(ck, path, lowering="grouped", parity=False)
    return path, ck


def test_rtx_engine_from_exported_dsp_model_through_polygraphy(exported: tuple[Path, object], tmp_path: Path) -> None:
    onnx_path, _ = exported
    assert "POLYGRAPHY_USE_TENSORRT_RTX" not in os.environ  # the switch is set in code, not the environment
    manifest = build_engine(onnx_path, tmp_path / "dsp.engine", batch=(1, 2, 4), flavour=RTX, opt_level=0)
    import polygraphy.backend.trt.util as ptrt_util
    import polygraphy.config

    from dsp_deploy.runtime.trt_flavour import trt_logger

    assert polygraphy.config.USE_TENSORRT_RTX is True and "polygraphy.backend.trt" in sys.modules
    assert ptrt_util.TRT_LOGGER is trt_logger(sys.modules[RTX]).logger  # one-line errors still work
    assert manifest.flavour == RTX and manifest.batch == {"min": 1, "opt": 2, "max": 4}
    assert sum(g > 1 for g in manifest.conv_groups.values()) > 0, "the grouped DSP convs reach TensorRT"
    assert (tmp_path / "dsp.engine").stat().st_size == manifest.engine_bytes > 0


def test_comparator_passes_equal_and_catches_different_models(exported: tuple[Path, object]) -> None:
    onnx_path, ck = exported
    model = build_model(ck)
    feeds = [{"input": np.random.default_rng(b).standard_normal((b, 3, 16, 16)).astype(np.float32)} for b in (1, 3)]
    same = compare_runners(TorchRunner(module=model, input_shape=(3, 16, 16)), OrtRunner(onnx_path), feeds, atol=1e-3)
    assert same and len(same.max_abs) == 2 and max(same.max_abs) < 1e-3
    with torch.no_grad():
        next(model.parameters()).add_(0.5)  # a broken export would look like this
    other = compare_runners(TorchRunner(module=model, input_shape=(3, 16, 16)), OrtRunner(onnx_path), feeds, atol=1e-3)
    assert not other and all(d > 1e-3 for d in other.max_abs)


@pytest.mark.skipif(not cuda_gpus() or not torch.cuda.is_available(), reason="running a TensorRT engine needs a GPU")
def test_engine_matches_onnxruntime_on_a_gpu(exported: tuple[Path, object], tmp_path: Path) -> None:
    onnx_path, _ = exported
    manifest = build_engine(onnx_path, tmp_path / "dsp.engine", batch=(1, 2, 4), flavour=RTX)
    feeds = [{"input": np.random.default_rng(b).standard_normal((b, 3, 16, 16)).astype(np.float32)} for b in (1, 4)]
    result = compare_runners(OrtRunner(onnx_path), TrtRunner(tmp_path / "dsp.engine", flavour=manifest.flavour),
                             feeds, atol=lambda ref: 3e-2 * max(1.0, float(np.abs(ref).max())))
    assert result, result
