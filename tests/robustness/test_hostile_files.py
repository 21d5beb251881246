"""Corrupted and hostile files of every type the tool reads end cleanly: one line naming the file,
non-zero exit, no traceback, no output file, and no pickled code run (tests/robustness/hostile.py).
The full tally is tests/robustness/README.md (report.py); these run a smaller, seeded set."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustness.filetypes import make_samples, run_type
from robustness.hostile import REPO, hostile_pickles, run_cli

TYPES = ("checkpoint", "torchscript", "structure", "plan", "onnx", "engine", "manifest", "bench-results",
         "compare-results", "recipe", "profile")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("tensorrt_rtx")
    return make_samples(tmp_path_factory.mktemp("samples"))


@pytest.mark.parametrize("key", TYPES)
def test_corrupted_files_end_cleanly(samples, tmp_path, key):
    if key not in samples:
        pytest.skip("the authors' reference checkpoint is not in ../shared")
    outcomes = run_type(key, samples, tmp_path, seed=1, truncations=8, flips=8)
    unclean = [f"{o.variant.kind} {o.variant.label}: {o.detail}" for o in outcomes if not o.clean]
    assert not unclean, "\n".join(unclean)
    kinds = {o.variant.kind for o in outcomes}
    assert kinds == {"truncate", "flip", "empty", "directory", "wrong-type", "pickle"}
    assert all(o.status == "rejected" for o in outcomes if o.variant.kind in ("truncate", "empty", "pickle"))


def _pickle_commands(evil: Path, work: Path) -> dict[str, list[str]]:
    """Every command that hands a user's file to a pickle-based loader."""
    return {
        "info": ["info", str(evil)],
        "export": ["export", str(evil), "--out", str(work / "out.onnx"), "--no-cache"],
        "export --weights": ["export", "--model", "resnet20", "--weights", str(evil), "--out", str(work / "out.onnx")],
        "import-reference": ["import-reference", str(evil), "--out", str(work / "out.pt")],
        "prune": ["prune", str(evil), "--flops-reduction", "0.5", "--groups", "2", "--out", str(work / "out.pt")],
        "finetune": ["finetune", str(evil), "--data", "synthetic:8", "--epochs", "1", "--out", str(work / "out.pt")],
        "train --init": ["train", "--model", "resnet20", "--init", str(evil), "--data", "synthetic:8", "--epochs", "1",
                         "--out", str(work / "run")],
        "bench (torch)": ["bench", str(evil), "--backend", "torch", "--runs", "1", "--warmup", "0",
                          "--json", str(work / "out.json")],
        "compare --checkpoint": ["compare", "--checkpoint", str(evil), "--quick", "--out", str(work / "report")],
    }


@pytest.mark.parametrize("command", list(_pickle_commands(Path("x"), Path("y"))))
def test_hostile_pickles_never_run_code(samples, tmp_path, command):
    """Each pickle-based loader refuses a pickle whose unpickling would create the marker file."""
    marker = tmp_path / "PICKLED-CODE-RAN"
    for i, variant in enumerate(hostile_pickles(marker, samples.get("torchscript"))):
        evil = tmp_path / f"evil{i}.pt"
        evil.write_bytes(variant.data or b"")
        work = tmp_path / f"work{i}"
        work.mkdir()
        code, err = run_cli(_pickle_commands(evil, work)[command])
        assert not marker.exists(), f"{command} ran pickled code from a {variant.label}"
        assert code != 0 and "Traceback" not in err, (variant.label, err)
        assert [l for l in err.splitlines() if ": error:" in l and evil.name in l], (variant.label, err)
        assert not any(work.iterdir()), f"{command} left {list(work.iterdir())}"


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["export", "{evil}", "--out", "{out}"], ["info", "{truncated}"]])
def test_real_process_exits_with_one_line(samples, tmp_path, argv):
    """The same promise from a fresh `python -m dsp_deploy` process: exit code, stderr, marker."""
    marker = tmp_path / "PICKLED-CODE-RAN"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(hostile_pickles(marker)[1].data or b"")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(samples["checkpoint"].read_bytes()[:5000])
    out = tmp_path / "out.file"
    args = [a.format(evil=evil, truncated=truncated, out=out) for a in argv]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "dsp_deploy", *args], capture_output=True, text=True,
                          env=env, timeout=120)
    errors = [l for l in proc.stderr.splitlines() if ": error:" in l]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and (evil.name in errors[0] or truncated.name in errors[0]), proc.stderr
    assert not marker.exists() and not out.exists()
