"""`python -m dsp_deploy bench` as a user runs it: exit codes, one-line errors, JSON output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "dsp_deploy", "bench", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_not_a_model_is_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "readme.txt"
    junk.write_text("not a model\n")
    result = bench(str(junk))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "readme.txt" in lines[0] and "not an ONNX model" in lines[0]


def test_unknown_backend_and_fixed_batch(tmp_path: Path, make_onnx) -> None:
    fixed = make_onnx(tmp_path / "fixed.onnx", batch=1)
    result = bench(str(fixed), "--backend", "ort-cpu,openvino")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dsp-deploy bench: error: unknown backend 'openvino'; valid backends: ort-cpu, ort-cuda, torch, torch-cuda, trt"
    ]
    result = bench(str(fixed), "--batch", "1,4", "--runs", "2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "fixed batch size of 1; batch 4 is not allowed" in result.stderr.strip().splitlines()[-1]


def test_bench_writes_json_and_table(tmp_path: Path, onnx_pair: tuple[Path, Path]) -> None:
    out = tmp_path / "out.json"
    result = bench(*map(str, onnx_pair), "--backend", "ort-cpu,ort-cuda", "--batch", "1,2", "--runs", "5",
                   "--warmup", "1", "--threads", "1", "--baseline", "small", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "speedup vs small" in result.stdout and "wide" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {(r["variant"], r["batch"]) for r in ok} == {(v, b) for v in ("small", "wide") for b in (1, 2)}
    assert all(r["median_ms"] > 0 and r["threads"] == 1 and r["runs"] == 5 for r in ok)


def test_imports_stay_light() -> None:
    code = ("import sys, dsp_deploy.cli.bench, dsp_deploy.bench, dsp_deploy.cli.main as m; m.build_parser(); "
            "heavy = [n for n in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx') if n in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
