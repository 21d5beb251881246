"""TrtRunner: a clear BenchError without a GPU; on a GPU, outputs match ONNX Runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsp_deploy.engines import TrtRunner, build_engine
from dsp_deploy.errors import BenchError

from .engine_models import RTX

torch = pytest.importorskip("torch")
HAS_GPU = torch.cuda.is_available()


def test_missing_engine_file(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="engine file not found"):
        TrtRunner(tmp_path / "none.engine").infer({})


def test_construction_is_cheap(tmp_path: Path) -> None:
    runner = TrtRunner(tmp_path / "later.engine")  # nothing is loaded until activate()/infer()
    assert not runner.is_active


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error path")
def test_needs_a_gpu(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.engine"
    build_engine(tiny_onnx, out, flavour=RTX, opt_level=0)
    runner = TrtRunner(out, flavour=RTX)
    with pytest.raises(BenchError, match="needs a GPU"):
        runner.infer({"input": np.zeros((1, 4, 8, 8), np.float32)})
    assert not runner.is_active


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_gpu_outputs_match_onnxruntime(tiny_onnx: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.engine"
    manifest = build_engine(tiny_onnx, out, batch=(1, 2, 4))
    x = np.random.default_rng(0).standard_normal((3, 4, 8, 8)).astype(np.float32)
    expected = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with TrtRunner(out, flavour=manifest.flavour) as runner:
        assert runner.input_names == ["input"] and runner.output_names == ["logits"]
        got = runner.infer({"input": x})["logits"]
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-2)
