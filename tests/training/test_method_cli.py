"""`train --method pfs|scp|l1|dsp --flops-reduction R` through the CLI: bad input, and a tiny end-to-end
run on Fashion-MNIST-format files (FLOPs target, Gather-free export, resume)."""
from __future__ import annotations

from pathlib import Path

import pytest

from support.idx import write_fashion_set

TINY = ["--batch-size", "32", "--workers", "0", "--no-progress", "--epochs", "1"]


def _one_line_failure(proc, needle: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle.lower() in lines[0].lower(), lines[0]


def test_unknown_method(cli, tmp_path: Path) -> None:
    proc = cli("train", "--method", "obd", "--model", "resnet20", "--data", "synthetic:64", "--flops-reduction",
               "0.5", "--out", "RUN", *TINY, cwd=tmp_path)
    _one_line_failure(proc, "unknown method 'obd'")
    assert list(tmp_path.iterdir()) == []


def test_dataset_folder_without_idx_files(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = cli("train", "--method", "pfs", "--model", "resnet20", "--data", f"fashion-mnist:{tmp_path / 'empty'}",
               "--flops-reduction", "0.5", "--out", "RUN", *TINY, cwd=tmp_path)
    _one_line_failure(proc, "no Fashion-MNIST IDX files")
    assert not (tmp_path / "RUN").exists()


def test_impossible_flops_target(cli, tmp_path: Path) -> None:
    write_fashion_set(tmp_path / "fm")
    proc = cli("train", "--method", "scp", "--model", "resnet20", "--data", f"fashion-mnist:{tmp_path / 'fm'}",
               "--flops-reduction", "0.95", "--out", "RUN", *TINY, cwd=tmp_path)
    _one_line_failure(proc, "out of reach")
    assert not (tmp_path / "RUN").exists()


def test_images_of_the_wrong_size_for_the_model(cli, pipeline, tmp_path: Path) -> None:
    write_fashion_set(tmp_path / "fm")
    proc = cli("finetune", str(pipeline["pruned"]), "--data", f"fashion-mnist:{tmp_path / 'fm'}", "--out", "F.pt",
               *TINY, cwd=tmp_path)
    _one_line_failure(proc, "has 1x28x28 images but")
    assert not (tmp_path / "F.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pfs", "scp"])
def test_method_end_to_end(cli_ok, cli, info, tmp_path: Path, method: str) -> None:
    import onnx

    write_fashion_set(tmp_path / "fm", n_train=96, n_test=40, learnable=True)
    args = ["train", "--method", method, "--model", "resnet20", "--data", f"fashion-mnist:{tmp_path / 'fm'}",
            "--flops-reduction", "0.5", "--out", "RUN", *TINY]
    out = cli_ok(*args, "--json", cwd=tmp_path).stdout
    assert '"test_accuracy"' in out
    data = info(tmp_path / "RUN" / "final.pt", tmp_path)
    assert abs(data["dsp_convention"]["flops_reduction_pct"] - 50.0) <= 1.0
    assert data["groups"] == 1 and data["input_size"] == [28, 28]
    cli_ok("export", "RUN/final.pt", "-o", "m.onnx", "--lowering", "grouped", cwd=tmp_path)  # parity 1e-4 inside
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "Gather" not in ops and "Conv" in ops
    again = cli(*args, cwd=tmp_path)
    _one_line_failure(again, "already holds a run")
    cli_ok(*args, "--resume", cwd=tmp_path)  # every stage finished: nothing to redo
