"""A run killed mid-epoch and restarted with --resume finishes with a valid checkpoint."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from dsp_deploy.checkpoint import build_model, load_checkpoint

ARGS = ["--model", "resnet20", "--data", "synthetic:48", "--groups", "2", "--epochs", "2", "--batch-size", "16",
        "--workers", "0", "--no-progress", "--checkpoint-every", "1", "--out", "RUN"]  # 3 steps per epoch


def _kill_after_first_checkpoint(cli_spawn, work: Path) -> None:
    proc = cli_spawn("train", *ARGS, cwd=work)
    checkpoint = work / "RUN" / "checkpoint.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), proc.stderr.read() if proc.stderr else ""


def test_killed_run_resumes_to_completion(cli, cli_ok, cli_spawn, tmp_path: Path) -> None:
    _kill_after_first_checkpoint(cli_spawn, tmp_path)
    interrupted = load_checkpoint(tmp_path / "RUN" / "checkpoint.pt")
    assert interrupted.extra["complete"] is False
    state = interrupted.extra["resume"]
    assert 0 < state["global_step"] < 6 and state["step_in_epoch"] in (1, 2)  # saved mid-epoch

    again = cli("train", *ARGS, cwd=tmp_path)
    assert again.returncode != 0 and "--resume" in again.stderr  # no silent overwrite of a run

    cli_ok("train", *ARGS, "--resume", cwd=tmp_path)
    final = load_checkpoint(tmp_path / "RUN" / "checkpoint.pt")
    assert final.extra["complete"] is True and final.extra["global_step"] == 6 and final.extra["epoch"] == 2
    build_model(final)  # a valid, loadable checkpoint
    assert set(final.extra["group_logits"]) == set(interrupted.extra["group_logits"])
    records = [json.loads(l) for l in (tmp_path / "RUN" / "metrics.jsonl").read_text().splitlines()]
    assert records[0] == {"event": "header", "format": "dsp-deploy/metrics", "format_version": 1}
    assert [r["event"] for r in records].count("header") == 1  # the resumed run appended, no second header
    assert [r["event"] for r in records].count("resume") == 1
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == sorted(set(steps))  # no step logged twice
    assert records[-1]["event"] == "final"

    done = cli_ok("train", *ARGS, "--resume", cwd=tmp_path)  # resuming a finished run is a no-op
    assert "checkpoint" in done.stdout


def test_killed_finetune_resumes_to_completion(cli, cli_ok, cli_spawn, pipeline, tmp_path: Path) -> None:
    args = ["finetune", str(pipeline["pruned"]), "--data", "synthetic:48", "--epochs", "2", "--batch-size", "16",
            "--workers", "0", "--no-progress", "--checkpoint-every", "1", "--out", "F.pt"]
    proc = cli_spawn(*args, cwd=tmp_path)
    partial = tmp_path / "F.resume.pt"
    deadline = time.time() + 300
    while not partial.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists() and not (tmp_path / "F.pt").exists()  # F.pt only appears when finished
    assert load_checkpoint(partial).extra["complete"] is False
    refused = cli(*args, cwd=tmp_path)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    cli_ok(*args, "--resume", cwd=tmp_path)
    final = load_checkpoint(tmp_path / "F.pt")
    assert final.extra["complete"] is True and not partial.exists()
    assert final.structure.layers == load_checkpoint(pipeline["pruned"]).structure.layers
