"""The backend registry: every backend the tool can run a model on, in one table.

Adding a backend = one loader + one runner class + one ``register(...)`` line here; bench,
compare, serving and the planners read backends, file kinds and devices from this table only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dsp_deploy.errors import UsageError
from dsp_deploy.runtime.ort import OrtRunner
from dsp_deploy.runtime.runner import Runner
from dsp_deploy.runtime.torch_runner import TorchRunner
from dsp_deploy.runtime.trt_manifest import EngineManifest
from dsp_deploy.runtime.trt_runner import TrtRunner

KINDS: tuple[str, ...] = ("onnx", "engine", "checkpoint", "torchscript")
"""Model file kinds: ONNX, TensorRT engine (+ JSON manifest), dsp-deploy checkpoint, TorchScript."""


@dataclass(frozen=True)
class RunnerSettings:
    """What every runner of one measurement shares (a backend ignores what it does not use)."""

    threads: int = 1
    cuda_graphs: bool = False
    input_shape: tuple[int, ...] | None = None
    kind: str = "onnx"
    manifest: EngineManifest | None = None
    name: str | None = None


@dataclass(frozen=True)
class Backend:
    """One backend: the file kinds it runs (the first is what ``compare`` builds for it), its
    device, and the factory making an (inactive) runner for a model file."""

    name: str
    kinds: tuple[str, ...]
    device: str
    make: Callable[[Path, RunnerSettings], Runner]


BACKENDS: dict[str, Backend] = {}


def register(name: str, kinds: Sequence[str], device: str, make: Callable[[Path, RunnerSettings], Runner]) -> None:
    """Add a backend to the table (order of registration = order in help texts)."""
    BACKENDS[name] = Backend(name, tuple(kinds), device, make)


def backend(name: str) -> Backend:
    """The registered backend ``name``; UsageError listing the valid ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend '{name}'; valid backends: {', '.join(BACKENDS)}") from None


def make_runner(name: str, path: str | Path, settings: RunnerSettings) -> Runner:
    """An inactive runner of backend ``name`` for the model file ``path``."""
    return backend(name).make(Path(path), settings)


def backends_for_kind(kind: str) -> tuple[str, ...]:
    """Backends able to run files of ``kind``."""
    return tuple(b.name for b in BACKENDS.values() if kind in b.kinds)


def _ort(cuda: bool) -> Callable[[Path, RunnerSettings], Runner]:
    def make(path: Path, s: RunnerSettings) -> Runner:
        return OrtRunner(path, cuda=cuda, threads=s.threads, name=s.name)
    return make


def _torch(cuda: bool) -> Callable[[Path, RunnerSettings], Runner]:
    def make(path: Path, s: RunnerSettings) -> Runner:
        return TorchRunner(path, kind=s.kind, cuda=cuda, cuda_graphs=s.cuda_graphs and cuda, threads=s.threads,
                           input_shape=s.input_shape, name=s.name)
    return make


def _trt(path: Path, s: RunnerSettings) -> Runner:
    return TrtRunner(path, manifest=s.manifest, name=s.name)


register("ort-cpu", ("onnx",), "cpu", _ort(False))
register("ort-cuda", ("onnx",), "cuda", _ort(True))
register("torch", ("torchscript", "checkpoint"), "cpu", _torch(False))
register("torch-cuda", ("torchscript", "checkpoint"), "cuda", _torch(True))
register("trt", ("engine",), "cuda", _trt)
