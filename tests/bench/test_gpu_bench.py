"""`python bench/gpu.py --device cpu --quick` end to end: the authors' ResNet-56 g=2, its dense twin and
L1-inner lowered to torch modules, timed interleaved through the harness, JSON + report written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def gpu_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_quick_cpu_run_writes_report(tmp_path, reference_dir):
    out = tmp_path / "gpu"
    done = gpu_py("--device", "cpu", "--quick", "--reference", str(reference_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "gpu.json").read_text())
    assert doc["format"] == "dsp-deploy/gpu-bench" and doc["format_version"] == 1
    names = {v["name"] for v in doc["variants"]}
    assert names == {"dense", "dsp-grouped", "dsp-union", "l1-inner"}
    assert all(v["parity"] <= 1e-4 for v in doc["variants"])
    rows = doc["rows"]
    assert {r["variant"] for r in rows} == names and all(r["status"] == "ok" and r["median_ms"] > 0 for r in rows)
    report = (out / "report.md").read_text()
    assert "## Who wins" in report and "### resnet56, fp32, eager" in report and doc["machine"]["cpu"] in report


def test_bad_choice_is_one_line(tmp_path):
    done = gpu_py("--device", "cpu", "--modes", "graphs", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "CUDA graphs need --device cuda" in done.stderr
    assert not (tmp_path / "x").exists()
