"""Fixtures of the training tests: run the real CLI in a subprocess, tiny pipeline runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_DATA = "synthetic:64"  # 64 train + 64 val images: two steps per epoch
TINY_BATCH = ["--batch-size", "32", "--workers", "0", "--no-progress"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`dsp-deploy ARGS` in ``cwd``; returns the finished process (never raises on failure)."""
    return subprocess.run([sys.executable, "-m", "dsp_deploy", *args], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def info_json(path: Path, cwd: Path) -> dict:
    return json.loads(ok(run_cli("info", str(path), "--json", cwd=cwd)).stdout)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run the CLI: ``cli("train", ..., cwd=path)`` -> CompletedProcess."""
    return run_cli


@pytest.fixture
def cli_ok() -> Callable[..., subprocess.CompletedProcess]:
    """Run the CLI and fail the test (showing stderr) unless it exits 0."""
    return lambda *args, **kwargs: ok(run_cli(*args, **kwargs))


@pytest.fixture
def cli_spawn() -> Callable[..., subprocess.Popen]:
    """Start the CLI without waiting: ``cli_spawn("train", ..., cwd=path)`` -> Popen."""
    def spawn(*args: str, cwd: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dsp_deploy", *args], cwd=cwd, env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return spawn


@pytest.fixture
def info() -> Callable[[Path, Path], dict]:
    """`dsp-deploy info PATH --json` as a dict."""
    return info_json


@pytest.fixture
def training_threads() -> Iterator[None]:
    """Real training in the test process: use both cores (tests/conftest.py pins torch to one), unless
    pytest-xdist already runs a worker per core."""
    import torch

    before = torch.get_num_threads()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train (group learning, G=4) -> prune 60% -> finetune, through the CLI, on a tiny dataset."""
    work = tmp_path_factory.mktemp("pipeline")
    ok(run_cli("train", "--model", "resnet20", "--data", TINY_DATA, "--groups", "4", "--epochs", "1", "--out", "RUN",
               *TINY_BATCH, cwd=work))
    ok(run_cli("prune", "RUN/checkpoint.pt", "--flops-reduction", "0.6", "--out", "P.pt", "--no-progress", cwd=work))
    ok(run_cli("finetune", "P.pt", "--data", TINY_DATA, "--epochs", "1", "--out", "F.pt", *TINY_BATCH, cwd=work))
    return {"work": work, "run": work / "RUN", "pruned": work / "P.pt", "finetuned": work / "F.pt"}


@pytest.fixture(scope="session")
def dpp_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DPPNet ResNet-20 through the CLI: pattern learning (alpha 8e-6) then fine-tuning, 1 epoch each."""
    work = tmp_path_factory.mktemp("dppnet")
    ok(run_cli("train", "--model", "dppnet-resnet20", "--data", TINY_DATA, "--epochs", "1", "--alpha", "8e-6",
               "--out", "RUN", *TINY_BATCH, cwd=work))
    ok(run_cli("finetune", "RUN", "--data", TINY_DATA, "--epochs", "1", "--out", "F.pt", *TINY_BATCH, cwd=work))
    return work
