"""Serving tests run the real Triton server PyTriton ships (the `serve` extra), on 127.0.0.1 only,
with free ports, bounded loops and a small DSP ResNet-20."""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("pytriton")

from dsp_deploy.serving.process import ServeProcess

START_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def dsp_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DSP ResNet-20 (random weights, G=2, 32x32) exported with the project's exporter."""
    import torch
    from export.helpers import tiny_checkpoint

    from dsp_deploy.export import export_onnx

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("serving") / "dsp20.onnx"
    export_onnx(tiny_checkpoint("resnet20", groups=2, size=32), path, lowering="grouped", parity=True)
    return path


@pytest.fixture(scope="session")
def repo(dsp_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`triton-repo` output for the DSP model with the preprocessing ensemble."""
    from dsp_deploy.serving.repository import RepoOptions, build_repository

    out = tmp_path_factory.mktemp("repo") / "models"
    build_repository([f"dsp20={dsp_onnx}"], out, RepoOptions(max_batch=16, queue_delay_us=2000, preprocess=True))
    return out


def children(pid: int) -> list[int]:
    """Every descendant process id of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ServerProcess(ServeProcess):
    """The serve child process plus the descendants it started (tritonserver, backend stubs)."""

    descendants: tuple[int, ...] = ()

    def wait_ready(self, models: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
        super().wait_ready(models, timeout_s)
        self.descendants = tuple(children(self.proc.pid))

    def stop_checked(self, sig: int = signal.SIGTERM) -> tuple[int, list[int]]:
        """(exit code, descendant pids still alive afterwards)."""
        code = self.stop(sig)
        return code, [p for p in self.descendants if alive(p)]


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The repository served by the real Triton server for the tests of one module."""
    proc = ServerProcess([str(repo)], tmp_path_factory.mktemp("log") / "serve.log")
    try:
        proc.wait_ready(["dsp20", "dsp20_image"])
    except Exception:  # noqa: BLE001 - whatever went wrong, the server log says why
        proc.stop(signal.SIGKILL)
        pytest.fail(f"server did not start:\n{proc.log.read_text()[-3000:]}")
    yield proc
    _, leftover = proc.stop_checked()
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
