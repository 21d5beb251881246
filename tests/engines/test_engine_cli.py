"""`python -m dsp_deploy build ...` in a subprocess: exit codes, one-line errors, no stray files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .engine_models import RTX, files_in, scatter_add_model

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "dsp_deploy", "build", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_cli_build_success(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "tiny.engine"
    proc = run_cli(tiny_onnx, "--out", out, "--batch", "1,2,8", "--target", "sm89,sm120",
                   "--opt-level", "0", "--flavour", RTX, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tiny.engine" in proc.stdout and "1 convs (1 grouped)" in proc.stdout
    data = json.loads((tmp_path / "out" / "tiny.engine.json").read_text())
    assert data["targets"] == ["SM89", "SM120"] and data["batch"] == {"min": 1, "opt": 2, "max": 8}
    assert data["conv_groups"] == {"conv1": 2}
    assert out.stat().st_size == data["engine_bytes"]


def test_cli_default_out_path(tiny_onnx: Path, tmp_path: Path) -> None:
    proc = run_cli(tiny_onnx, "--opt-level", "0", "--flavour", RTX, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tiny.engine").is_file() and (tmp_path / "tiny.engine.json").is_file()


@pytest.mark.parametrize(
    ("case", "extra", "code", "needle"),
    [
        ("missing", [], 1, "ONNX file not found"),
        ("corrupt", [], 1, "not a valid ONNX model"),
        ("scatter", [], 1, "'scatter_add' (ScatterElements)"),
        ("good", ["--batch", "8,4,16"], 2, "MIN <= OPT <= MAX"),
        ("good", ["--batch", "1,x,4"], 2, "integers"),
        ("good", ["--target", "sm75"], 1, "layer 'fc'"),
        ("good", ["--target", "sm42"], 2, "--target SM42"),
    ],
)
def test_cli_errors_are_one_line_and_leave_no_files(
    case: str, extra: list[str], code: int, needle: str, tiny_onnx: Path, corrupt_onnx: Path,
    write_model, tmp_path: Path,
) -> None:
    source = {
        "missing": tmp_path / "missing.onnx",
        "corrupt": corrupt_onnx,
        "scatter": write_model(scatter_add_model(), "scatter.onnx"),
        "good": tiny_onnx,
    }[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run_cli(source, "--out", out_dir / "m.engine", "--opt-level", "0", "--flavour", RTX, *extra, cwd=tmp_path)
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dsp-deploy build: error:") and needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert files_in(out_dir) == set()


def test_importing_cli_build_is_lazy() -> None:
    code = (
        "import sys, dsp_deploy.cli.build, dsp_deploy.engines\n"
        "heavy = [m for m in ('tensorrt', 'tensorrt_rtx', 'torch', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
