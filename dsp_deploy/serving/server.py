"""Serve models through a real Triton Inference Server (the ``tritonserver`` PyTriton ships).

PyTriton's server has only the Python backend, so each model's Triton config (written by
``triton-repo`` or built the same way for a bare ONNX file) is bound to one of the project's
runners: ``OrtRunner`` for ONNX (CPU), ``TrtRunner`` for engines (GPU only). Triton itself does
the HTTP/gRPC endpoints, request validation (names, shapes, dtypes) and dynamic batching.
"""
from __future__ import annotations

import logging
import os
import signal
import sysconfig
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.bench.variants import load_variant
from dsp_deploy.errors import BenchError, ServingError
from dsp_deploy.runtime.ort import OrtRunner
from dsp_deploy.runtime.trt_runner import TrtRunner
from dsp_deploy.serving.config import build_config, checked_text, parse_config, tensor_list
from dsp_deploy.serving.repository import RepoModel, model_io, read_repository

log = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    """Where to listen and how to run the models."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int | None = None  # None: metrics endpoint off
    threads: int = 1  # ONNX Runtime intra-op threads per model
    max_batch: int = 32  # for bare ONNX files (repositories carry their own)
    queue_delay_us: int = 1000
    exit_timeout_s: int = 10


def collect_models(sources: Sequence[str], options: ServeOptions) -> list[RepoModel]:
    """Repository folders and ``[NAME=]file`` specs -> models with parsed, checked configs."""
    models: list[RepoModel] = []
    for source in sources:
        if Path(source).is_dir():
            models += read_repository(source)
            continue
        io = model_io(source, options.max_batch)
        text = checked_text(build_config(io, queue_delay_us=options.queue_delay_us), io)
        models.append(RepoModel(io.name, parse_config(text, f"model '{io.name}'"), io.path))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ServingError(f"two models share a name in {names}")
    return models


def _runner(model: RepoModel, threads: int) -> Any:
    """An activated runner for one model; ServingError naming the model when it does not load."""
    assert model.path is not None
    try:
        if model.config.platform == "tensorrt_plan":
            variant = load_variant(model.path, model.name)
            runner = TrtRunner(variant.path, manifest=variant.manifest)
        else:
            runner = OrtRunner(model.path, threads=threads, name=model.name)
        runner.activate()
    except BenchError as exc:
        raise ServingError(f"model '{model.name}' failed to load: {str(exc).splitlines()[0]}") from None
    return runner


def _chain(model: RepoModel, runners: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """An ensemble as one function: each step's runner on the tensors the steps before produced."""
    steps = list(model.config.ensemble_scheduling.step)
    outputs = [t.name for t in model.config.output]

    def run(tensors: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(tensors)
        for step in steps:
            result = runners[step.model_name].infer({k: values[v] for k, v in step.input_map.items()})
            values.update({v: result[k] for k, v in step.output_map.items()})
        return {name: values[name] for name in outputs}

    return run


def _python_libdir_first() -> None:
    """The Python-backend stub links ``libpythonX.Y.so``; the loader must find THIS interpreter's
    copy (a system one of another patch level breaks model loading), so put its libdir first."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and Path(libdir, sysconfig.get_config_var("LDLIBRARY") or "").is_file():
        paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])


class ModelServer:
    """A started Triton server with the models bound; ``stop()`` (or the context exit) ends it."""

    def __init__(self, models: Sequence[RepoModel], options: ServeOptions) -> None:
        self.models = list(models)
        self.options = options
        self._runners: dict[str, list[Any]] = {}
        self._triton: Any = None

    def start(self) -> ModelServer:
        """Load every model (fails before the server starts), then start Triton and bind them."""
        try:
            import numpy as np
            from pytriton.decorators import batch
            from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
            from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig
        except ImportError as exc:
            raise ServingError(f"PyTriton is not installed ({exc}); install dsp-deploy[serve]") from None
        for model in self.models:  # one runner per configured instance (instance_group count)
            if model.path is not None:
                count = max(1, sum(g.count for g in model.config.instance_group))
                self._runners[model.name] = [_runner(model, self.options.threads) for _ in range(count)]
        _python_libdir_first()
        opts = self.options
        config = TritonConfig(http_address=opts.host, http_port=opts.http_port, grpc_address=opts.host,
                              grpc_port=opts.grpc_port, allow_metrics=opts.metrics_port is not None,
                              metrics_address=opts.host, metrics_port=opts.metrics_port,
                              exit_timeout_secs=opts.exit_timeout_s, log_verbose=0)
        # Statistics stay readable (they show the dynamic batching); repository control etc. stay locked.
        locked = [e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"]
        self._triton = Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=locked))
        try:
            for model in self.models:
                fns = ([r.infer for r in self._runners[model.name]] if model.path is not None
                       else [_chain(model, {n: rs[0] for n, rs in self._runners.items()})])
                cfg = model.config
                dyn = cfg.dynamic_batching
                batcher = DynamicBatcher(max_queue_delay_microseconds=dyn.max_queue_delay_microseconds,
                                         preferred_batch_size=list(dyn.preferred_batch_size) or None)
                tensors = [[Tensor(name=t.name, dtype=np.dtype(t.dtype), shape=t.dims) for t in tensor_list(cfg, k)]
                           for k in ("input", "output")]
                self._triton.bind(model_name=model.name, infer_func=[batch(_as_kwargs(fn)) for fn in fns],
                                  inputs=tensors[0], outputs=tensors[1], strict=True,
                                  config=ModelConfig(max_batch_size=cfg.max_batch_size, batcher=batcher,
                                                     batching=cfg.max_batch_size > 0))
            self._triton.run()
        except Exception as exc:
            self.stop()
            if isinstance(exc, ServingError):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ServingError(f"Triton server did not start: {first}") from None
        return self

    def is_alive(self) -> bool:
        """Triton and every bound model still running."""
        return self._triton is not None and self._triton.is_alive()

    def stop(self) -> None:
        """Stop Triton (it waits ``exit_timeout_s`` for in-flight requests) and free the runners."""
        if self._triton is not None:
            self._triton.stop()
            self._triton = None
        for runners in self._runners.values():
            for runner in runners:
                runner.deactivate()
        self._runners.clear()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _as_kwargs(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Runner.infer takes one mapping; PyTriton's ``@batch`` calls with keyword arguments."""
    def infer(**inputs: Any) -> dict[str, Any]:
        return fn(inputs)

    return infer


def serve_until_signal(server: ModelServer, ready: Callable[[], None] | None = None, poll_s: float = 0.5) -> int:
    """Run ``server`` until SIGINT/SIGTERM (exit 0) or until it dies (ServingError); always stops it."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if ready:
            ready()
        while not stop.wait(poll_s):
            if not server.is_alive():
                raise ServingError("the Triton server stopped unexpectedly")
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
