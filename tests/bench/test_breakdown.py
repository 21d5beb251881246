"""The ORT-profiler breakdown: node categories, real profiles of a dense and a grouped export,
and the `bench --breakdown` table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dsp_deploy.bench.breakdown import (
    CATEGORIES,
    NodeTime,
    breakdown_onnx_files,
    category_of,
    format_breakdown,
    summarize_categories,
)
from dsp_deploy.cli.main import main
from dsp_deploy.errors import BenchError
from dsp_deploy.export import export_onnx

from ..export.helpers import tiny_checkpoint


@pytest.mark.parametrize(("name", "op", "category"), [
    ("conv1.relu_7_nchwc", "Conv", "fixed convs"),
    ("layer2.0.downsample.0.conv_92_nchwc", "Conv", "fixed convs"),
    ("layer2.0.conv1.relu_1042_nchwc", "Conv", "block convs"),
    ("layer1.0.conv3/Gather_565", "Gather", "data movement"),
    ("ReorderInput_token_13", "ReorderInput", "data movement"),
    ("layer2.2.add", "Add", "residual add + relu"),
    ("fc", "Gemm", "classifier and pooling"),
    ("x", "Softmax", "other"),
])
def test_category_of(name: str, op: str, category: str) -> None:
    assert category_of(NodeTime(name, op, 1.0)) == category


def test_summary_and_table() -> None:
    nodes = [NodeTime("a", "Conv", 2.0), NodeTime("b", "Gather", 0.5), NodeTime("conv1.x", "Conv", 1.0)]
    sums = summarize_categories(nodes)
    assert set(CATEGORIES) <= set(sums) and sums["total"] == pytest.approx(3.5)
    assert sums["block convs"] == 2.0 and sums["data movement"] == 0.5 and sums["fixed convs"] == 1.0
    text = format_breakdown({"dense": sums, "dsp": dict(sums, total=1.75)}, baseline="dense")
    assert "| total | 3.50 | 1.75 | 50.0% |" in text


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("breakdown")
    torch.manual_seed(0)
    checkpoint = tiny_checkpoint("resnet20", groups=2)
    return {
        "dense": export_onnx(checkpoint, folder / "dense.onnx", lowering="dense").onnx_path,
        "grouped": export_onnx(checkpoint, folder / "grouped.onnx", lowering="grouped").onnx_path,
    }


def test_profiles_of_real_exports(exported: dict[str, Path]) -> None:
    columns = breakdown_onnx_files(exported, 2, runs=3)
    dense, grouped = columns["dense"], columns["grouped"]
    for sums in columns.values():
        assert sums["total"] > 0 and sums["block convs"] > 0 and sums["fixed convs"] > 0
        assert sums["total"] == pytest.approx(sum(sums[c] for c in CATEGORIES))
    # the grouped lowering feeds its convs through Gathers; the dense export has none
    assert grouped["data movement"] > dense["data movement"]


def test_unloadable_model_is_bench_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model")
    with pytest.raises(BenchError, match="cannot load"):
        breakdown_onnx_files({"bad": bad}, 1, runs=1)


def test_cli_prints_breakdown(exported: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-q", "bench", f"dense={exported['dense']}", f"grouped={exported['grouped']}",
                 "--backend", "ort-cpu", "--threads", "1", "--runs", "3", "--warmup", "1", "--batch", "2",
                 "--baseline", "dense", "--breakdown"])
    out = capsys.readouterr().out
    assert code == 0
    assert "where the time goes" in out and "| data movement |" in out and "grouped share of dense total" in out
    table = [line for line in out.splitlines() if line.startswith("| total |")]
    assert len(table) == 1 and np.isfinite(float(table[0].split("|")[2]))


def test_cli_breakdown_without_onnx_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripted = torch.jit.script(torch.nn.Conv2d(3, 4, 3, padding=1))
    path = tmp_path / "conv.pt"
    scripted.save(str(path))
    code = main(["-q", "bench", str(path), "--backend", "torch", "--threads", "1", "--runs", "2", "--warmup", "1",
                 "--input-shape", "3x8x8", "--breakdown"])
    assert code == 0
    assert "breakdown: no ONNX model among the inputs" in capsys.readouterr().out
