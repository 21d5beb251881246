"""DPPNet end to end through the CLI on a tiny synthetic set: pattern learning (1 epoch), frozen-
pattern fine-tuning (1 epoch), `info`, export from the one file with parity at batch 1/3/8 and
executed MACs equal to `info`'s FLOPs, a TensorRT-for-RTX engine; plus the one-line refusals."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def _one_line_failure(proc, needle: str) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.mark.slow
def test_stages_info_export_and_engine(dpp_pipeline: Path, info) -> None:
    from dsp_deploy.checkpoint import load_checkpoint, load_model
    from dsp_deploy.compare.onnx_cost import onnx_costs
    from dsp_deploy.engines import build_engine
    from dsp_deploy.export import export_onnx
    from dsp_deploy.models.dpp import dpp_convs

    run = load_checkpoint(dpp_pipeline / "RUN" / "checkpoint.pt")
    assert run.extra["stage"] == "patterns" and run.extra["complete"] and run.extra["alpha"] == 8e-6
    model = load_model(dpp_pipeline / "F.pt")
    convs = list(dpp_convs(model))
    assert len(convs) == 18 and all(bool(conv.frozen) for _, conv in convs)
    info = info(dpp_pipeline / "F.pt", dpp_pipeline)
    assert info["method"] == "dppnet" and len(info["dppnet"]["layers"]) == 18
    assert info["flops"] == info["dppnet"]["flops"]

    result = export_onnx(dpp_pipeline / "F.pt", dpp_pipeline / "F.onnx")
    assert sorted(result.parity_max_diff) == [1, 3, 8] and result.max_diff < 1e-4
    macs, _ = onnx_costs(dpp_pipeline / "F.onnx")
    assert abs(macs - info["flops"]) <= 0.05 * info["flops"]
    manifest = build_engine(dpp_pipeline / "F.onnx", dpp_pipeline / "F.engine", batch=(1, 8, 32),
                            flavour="tensorrt_rtx", opt_level=0)
    assert (dpp_pipeline / "F.engine").stat().st_size == manifest.engine_bytes > 0


@pytest.mark.slow
def test_dppnet_checkpoint_refused_by_the_dsp_pruner(cli, dpp_pipeline: Path, tmp_path: Path) -> None:
    proc = cli("prune", str(dpp_pipeline / "RUN"), "--flops-reduction", "0.5", "--out", "P.pt", cwd=tmp_path)
    _one_line_failure(proc, "is a DPPNet model (dppnet-resnet20)")
    assert list(tmp_path.iterdir()) == []


def test_dsp_pruned_checkpoint_refused_as_dppnet_init(cli, tmp_path: Path) -> None:
    from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
    from dsp_deploy.models import create
    from dsp_deploy.structure import ConvStructure

    ckpt = dense_checkpoint("resnet20", create("resnet20"))
    layer = ConvStructure("layer1.0.conv1", 16, 16, 3, 1, 1, (0,) * 16, (tuple(range(8)),))
    ckpt.structure = ckpt.structure.with_layers({layer.name: layer})
    save_checkpoint(tmp_path / "P.pt", ckpt)
    proc = cli("train", "--model", "dppnet-resnet20", "--init", "P.pt", "--data", "synthetic:64", "--epochs", "1",
               "--out", "RUN", "--batch-size", "32", "--workers", "0", "--no-progress", cwd=tmp_path)
    _one_line_failure(proc, "is pruned (layer 'layer1.0.conv1'); DPPNet starts from a dense resnet20")
    assert not (tmp_path / "RUN").exists()
