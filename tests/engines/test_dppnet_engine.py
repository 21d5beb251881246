"""A DPPNet export goes through the real TensorRT-for-RTX parser with zero errors and builds."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsp_deploy.engines import build_engine, parse_onnx_network

from .engine_models import RTX

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_dppnet_resnet20_parses_and_builds(tmp_path: Path) -> None:
    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.export import export_onnx
    from dsp_deploy.models import create, topology
    from dsp_deploy.models.dpp import set_random_patterns
    from dsp_deploy.structure import dense_structure

    torch.manual_seed(0)
    net = create("dppnet-resnet20")
    set_random_patterns(net, taps=3)
    ckpt = Checkpoint("dppnet-resnet20", net.state_dict(),
                      dense_structure(topology("dppnet-resnet20", input_size=(16, 16))))
    onnx_path = tmp_path / "dpp.onnx"
    export_onnx(ckpt, onnx_path, parity=False)
    summary = parse_onnx_network(onnx_path, flavour=RTX)  # raises on any parser error
    assert summary.inputs[0].shape == (-1, 3, 16, 16)
    assert {layer.type for layer in summary.layers} >= {"MATRIX_MULTIPLY", "SOFTMAX", "SLICE"}
    manifest = build_engine(onnx_path, tmp_path / "dpp.engine", batch=(1, 4, 8), flavour=RTX, opt_level=0)
    assert (tmp_path / "dpp.engine").stat().st_size == manifest.engine_bytes > 1000
    assert manifest.batch == {"min": 1, "opt": 4, "max": 8}
