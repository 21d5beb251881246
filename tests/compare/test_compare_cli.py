"""`dsp-deploy compare` end to end as a user runs it (real export, real ONNX Runtime), and its errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def compare(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "dsp_deploy", "compare", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in lines[0], lines[0]


def test_acceptance_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = compare("--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "speedup vs dense" in proc.stdout
    doc = json.loads((out / "results.json").read_text())
    variants = {v["name"]: v for v in doc["variants"]}
    assert set(variants) == {"dense", "dsp", "l1", "tp"}
    dsp = variants["dsp"]
    assert abs(dsp["dsp_flops_reduction_pct"] - 60.0) < 0.6
    for name in ("l1", "tp"):
        assert abs(variants[name]["flops"] - dsp["flops"]) <= 0.01 * dsp["flops"], name
        assert variants[name]["matched_to"] == "dsp"
    rows = doc["rows"]
    assert sorted((r["variant"], r["backend"], r["batch"]) for r in rows) == sorted(
        (v, "ort-cpu", b) for v in variants for b in (1, 8))
    for r in rows:
        assert r["status"] == "ok" and r["runs"] == 10
        assert r["flops"] == variants[r["variant"]]["flops"]
        assert r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] and r["speedup_vs_dense"] > 0
        assert r["lowering"]
    assert all(r["speedup_vs_dense"] == 1.0 for r in rows if r["variant"] == "dense")
    assert variants["dense"]["onnx_flops"] == variants["dense"]["flops"]
    report = (out / "report.md").read_text()
    assert "## Where DSP wins and where channel pruning wins" in report and "| tp |" in report
    assert (out / "results.csv").read_text().count("\n") == len(rows) + 1
    for png in ("latency_vs_flops.png", "speedup_vs_batch.png"):
        with Image.open(out / png) as image:
            image.verify()
            assert image.format == "PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.")]  # no temp folder left


def test_authors_checkpoint_with_l1_only(reference_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r20"
    proc = compare("--checkpoint", str(reference_dir / "resnet20_g4.pt"), "--baselines", "l1", "--batch", "2",
                   "--runs", "3", "--warmup", "1", "--threads", "1", "--lowering", "union", "--no-models",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    variants = {v["name"]: v for v in doc["variants"]}
    assert set(variants) == {"dense", "dsp", "l1"} and variants["dsp"]["groups"] == 4
    assert abs(variants["dsp"]["dsp_flops_reduction_pct"] - 63.57) < 0.05
    assert abs(variants["l1"]["flops"] - variants["dsp"]["flops"]) <= 0.01 * variants["dsp"]["flops"]
    assert variants["dsp"]["lowering"].startswith("union")
    assert not (out / "models").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--backend", "ort-cpu,openvino"],
     "unknown backend 'openvino'"),
    (["--model", "resnet21", "--groups", "2", "--flops-reduction", "0.6"], "unknown model 'resnet21'"),
    (["--model", "resnet20", "--groups", "2", "--flops-reduction", "1.5"], "--flops-reduction must be a fraction"),
    (["--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--batch", "0"], "batch size 0"),
    (["--model", "resnet20"], "give both --groups G and --flops-reduction R"),
    (["--checkpoint", "/nonexistent/model.pt"], "checkpoint not found"),
    (["--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--lowering", "magic"],
     "unknown lowering 'magic'"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    out = tmp_path / "out"
    one_line_error(compare(*args, "--out", str(out)), fragment)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_not_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    one_line_error(compare("--checkpoint", str(junk), "--out", str(tmp_path / "out")), "notes.txt")
    assert not (tmp_path / "out").exists()


def test_imports_stay_light() -> None:
    code = ("import sys, dsp_deploy.cli.compare, dsp_deploy.compare, dsp_deploy.baselines; "
            "from dsp_deploy.compare import report, results, config; "
            "heavy = [n for n in ('torch', 'onnx', 'onnxruntime', 'matplotlib', 'torch_pruning') if n in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_dppnet_row_at_the_nearest_flops(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = compare("--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--quick", "--batch", "1",
                   "--runs", "3", "--baselines", "dppnet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    variants = {v["name"]: v for v in doc["variants"]}
    assert set(variants) == {"dense", "dsp", "dppnet"}
    dpp = variants["dppnet"]
    assert dpp["method"] == "dppnet" and dpp["matched_to"] == "dsp" and dpp["status"] == "ok"
    assert dpp["onnx_flops"] == dpp["flops"]  # the DPP lowering executes what the FLOPs count says
    assert abs(dpp["flops_match_pct"]) < 25  # whole taps: the nearest of 9 pattern sizes
    assert "DSP vs best channel-pruned" not in proc.stdout  # DPPNet is not a channel-pruning baseline
    assert {(r["variant"], r["batch"]) for r in doc["rows"]} == {(v, 1) for v in variants}


# -- the seeds' channel-pruning methods (Pruning from Scratch, Soft Channel Pruning) as baselines --
@pytest.mark.slow
def test_pfs_and_scp_baselines_from_their_structure_search(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = compare("--model", "resnet20", "--groups", "2", "--flops-reduction", "0.5", "--baselines", "pfs,scp",
                   "--batch", "1", "--runs", "3", "--warmup", "1", "--threads", "1", "--lowering", "grouped",
                   "--no-models", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    variants = {v["name"]: v for v in json.loads((out / "results.json").read_text())["variants"]}
    assert set(variants) == {"dense", "dsp", "pfs", "scp"}
    for name in ("pfs", "scp"):
        assert variants[name]["groups"] == 1 and variants[name]["matched_to"] == "dsp"
        assert abs(variants[name]["flops"] - variants["dsp"]["flops"]) <= 0.01 * variants["dsp"]["flops"], name


@pytest.mark.parametrize("spec, fragment", [("l1=x.pt", "only pfs and scp take a trained checkpoint"),
                                            ("obd", "unknown baseline 'obd'")])
def test_bad_baseline_spec(tmp_path: Path, spec: str, fragment: str) -> None:
    one_line_error(compare("--model", "resnet20", "--groups", "2", "--flops-reduction", "0.5", "--baselines", spec,
                           "--out", str(tmp_path / "out")), fragment)
    assert not (tmp_path / "out").exists()


# --- `compare --match latency`: baselines re-pruned to the DSP model's measured latency (no timing asserted) ---
@pytest.mark.slow
def test_baselines_matched_to_measured_latency(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = compare("--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--baselines", "l1-inner",
                   "--quick", "--batch", "8", "--runs", "5", "--lowering", "grouped", "--match", "latency",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    variants = {v["name"]: v for v in doc["variants"]}
    l1 = variants["l1-inner"]
    assert l1["matched_by"] == "latency" and l1["matched_to"] == "dsp"
    assert l1["latency_match_pct"] is not None and "latency-matched to dsp" in l1["notes"]
    assert doc["config"]["match"] == "latency"
    assert "measured" in variants["dsp"]["notes"]
    report = (out / "report.md").read_text()
    assert "## FLOPs at matched latency" in report and "| l1-inner | dsp |" in report
    assert "matched latency" in report.splitlines()[0]


def test_bad_match_option(tmp_path: Path) -> None:
    one_line_error(compare("--model", "resnet20", "--groups", "2", "--flops-reduction", "0.6", "--match-batch", "0",
                           "--match", "latency", "--out", str(tmp_path / "o")), "--match-batch must be >= 1")
