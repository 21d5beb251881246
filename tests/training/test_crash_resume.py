"""Crash safety: SIGKILL `train`, `finetune` and `export` at several points (mid-epoch, while the
checkpoint is being written, mid-export). No output file is ever partial or corrupt, and
`--resume` ends with the same weights (within 1e-6 on CPU), structure and metrics as a run that
was never interrupted (same seed). Two exports to one --out leave one complete, valid file."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dsp_deploy.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

TRAIN = ["train", "--model", "resnet20", "--data", "synthetic:48", "--groups", "2", "--epochs", "2",
         "--batch-size", "16", "--workers", "0", "--no-progress", "--checkpoint-every", "1", "--seed", "3"]


def _wait_for(condition: Callable[[], bool], proc, timeout: float = 240, poll: float = 0.001) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(poll)
    return False


def _temp_siblings(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _assert_same_run(resumed, reference) -> None:
    """Same structure, metrics and (within 1e-6) weights as the uninterrupted run."""
    assert resumed.structure.layers == reference.structure.layers
    assert resumed.metadata.get("val_accuracy") == pytest.approx(reference.metadata.get("val_accuracy"), abs=1e-9)
    assert resumed.state_dict.keys() == reference.state_dict.keys()
    worst = max(float((resumed.state_dict[k].double() - reference.state_dict[k].double()).abs().max())
                for k in reference.state_dict if reference.state_dict[k].is_floating_point())
    assert worst <= 1e-6, f"weights differ by {worst:.3e} from the uninterrupted run"
    for key in ("global_step", "epoch", "complete"):
        assert resumed.extra.get(key) == reference.extra.get(key), key


def test_train_killed_twice_then_resumed_matches_uninterrupted(cli_ok, cli_spawn, tmp_path):
    cli_ok(*TRAIN, "--out", "REF", cwd=tmp_path)
    reference = load_checkpoint(tmp_path / "REF" / "checkpoint.pt")

    checkpoint = tmp_path / "RUN" / "checkpoint.pt"
    proc = cli_spawn(*TRAIN, "--out", "RUN", cwd=tmp_path)
    hit = _wait_for(checkpoint.exists, proc)  # 1. mid-epoch, right after the step-1 save
    _kill(proc)
    assert hit and load_checkpoint(checkpoint).extra["complete"] is False

    proc = cli_spawn(*TRAIN, "--out", "RUN", "--resume", cwd=tmp_path)
    hit = _wait_for(lambda: bool(_temp_siblings(checkpoint)), proc)  # 2. while a save is being written
    _kill(proc)
    assert hit, "the resumed run ended before a checkpoint write could be interrupted"
    assert load_checkpoint(checkpoint).extra["complete"] is False  # the previous complete file, never partial

    cli_ok(*TRAIN, "--out", "RUN", "--resume", cwd=tmp_path)
    _assert_same_run(load_checkpoint(checkpoint), reference)
    assert not _temp_siblings(checkpoint), "the killed write's temporary file was left in the run folder"


def test_finetune_killed_then_resumed_matches_uninterrupted(cli_ok, cli_spawn, pipeline, tmp_path):
    args = ["finetune", str(pipeline["pruned"]), "--data", "synthetic:48", "--epochs", "2", "--batch-size", "16",
            "--workers", "0", "--no-progress", "--checkpoint-every", "1", "--seed", "5"]
    cli_ok(*args, "--out", "REF.pt", cwd=tmp_path)
    reference = load_checkpoint(tmp_path / "REF.pt")

    out, partial = tmp_path / "F.pt", tmp_path / "F.resume.pt"
    proc = cli_spawn(*args, "--out", "F.pt", cwd=tmp_path)
    _wait_for(partial.exists, proc)
    hit = _wait_for(lambda: bool(_temp_siblings(partial)), proc)  # mid-write of a later save
    _kill(proc)
    assert hit and not out.exists()
    assert load_checkpoint(partial).extra["complete"] is False

    cli_ok(*args, "--out", "F.pt", "--resume", cwd=tmp_path)
    _assert_same_run(load_checkpoint(out), reference)
    assert not _temp_siblings(partial) and not partial.exists()


EXPORT = ["export", "--model", "resnet20", "--lowering", "dense", "--no-cache", "--no-parity"]


def test_export_killed_leaves_no_partial_file_and_concurrent_exports_leave_one_valid(cli_spawn, tmp_path):
    import onnx

    out = tmp_path / "model.onnx"
    killed_mid_write = False
    for _ in range(5):  # on a loaded machine the write can finish between seeing the temp file and the kill
        proc = cli_spawn(*EXPORT, "--out", str(out), cwd=tmp_path)
        assert _wait_for(lambda: bool(_temp_siblings(out)), proc), "the export never wrote its temp file"
        _kill(proc)
        if not out.exists():  # killed mid-write of the ONNX file: nothing under the final names
            assert not (tmp_path / "model.onnx.plan.json").exists()
            killed_mid_write = True
            break
        onnx.checker.check_model(onnx.load(str(out)))  # too late to interrupt: then it is complete
        out.unlink()
        (tmp_path / "model.onnx.plan.json").unlink(missing_ok=True)
    assert killed_mid_write

    procs = [cli_spawn(*EXPORT, "--out", str(out), cwd=tmp_path) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read() if p.stderr else ""
    onnx.checker.check_model(onnx.load(str(out)))
    assert (tmp_path / "model.onnx.plan.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["model.onnx",
                                                                                      "model.onnx.plan.json"]
    assert os.path.getsize(out) > 100_000
