"""`dsp-deploy bench` on ONNX files exported from the authors' checkpoints: a row per file and
batch size, and backends that cannot run here reported as skipped (not an error)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def cli(*args: object) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dsp_deploy", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_bench_rows_for_exported_reference_models(reference_dir: Path, tmp_path: Path) -> None:
    files = []
    for name in ("resnet20_g4", "resnet56_g2"):
        ckpt, onnx_file = tmp_path / f"{name}.pt", tmp_path / f"{name}.onnx"
        cli("import-reference", reference_dir / f"{name}.pt", "--out", ckpt)
        cli("export", ckpt, "--out", onnx_file, "--lowering", "grouped")
        files.append(onnx_file)
    out = tmp_path / "bench.json"
    proc = cli("-q", "bench", *files, "--backend", "ort-cpu,ort-cuda", "--batch", "1,4", "--threads", "1",
               "--runs", "5", "--warmup", "1", "--json", out)
    rows = json.loads(out.read_text())["rows"]
    ok = {(Path(r["path"]).stem, r["batch"]) for r in rows if r["status"] == "ok" and r["backend"] == "ort-cpu"}
    assert ok == {(n, b) for n in ("resnet20_g4", "resnet56_g2") for b in (1, 4)}
    assert all(r["median_ms"] > 0 for r in rows if r["status"] == "ok")
    skipped = [r for r in rows if r["backend"] == "ort-cuda"]
    assert skipped and all(r["status"] == "skipped" and r["reason"] for r in skipped)
    assert "resnet56_g2" in proc.stdout and "skipped" in proc.stdout
