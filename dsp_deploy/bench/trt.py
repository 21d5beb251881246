"""TensorRT runner for ``.engine``/``.plan`` files: a thin adapter over ``dsp_deploy.engines``.

Engine execution lives in ``dsp_deploy.engines.TrtRunner(engine_path)`` (owned by the engine
stage). This adapter imports it lazily and turns every reason it cannot run here (no GPU, no
TensorRT runtime, module missing) into ``BackendUnavailable`` so the row is reported as skipped.
Input specs come from the engine's JSON manifest (``inputs``: name, dtype, shape with -1 for
dynamic dims). Timing wraps the engine runner's synchronous ``infer_device`` on inputs already on
the GPU, so host<->device copies are excluded.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dsp_deploy.bench.machine import cuda_gpus
from dsp_deploy.bench.runner import BackendUnavailable, InputSpec, Runner
from dsp_deploy.bench.variants import Variant
from dsp_deploy.engines.manifest import EngineManifest
from dsp_deploy.errors import BenchError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def manifest_input_specs(manifest: EngineManifest | None) -> list[InputSpec]:
    """Inputs listed in an engine manifest (``inputs``: name, shape, dtype); negative dims are dynamic."""
    specs = []
    for item in manifest.inputs if manifest is not None else []:
        if not isinstance(item, dict) or "name" not in item or "shape" not in item:
            continue
        shape = tuple(int(d) if isinstance(d, int) and d > 0 else None for d in item["shape"])
        specs.append(InputSpec(str(item["name"]), shape, str(item.get("dtype", "float32"))))
    return specs


class TrtRunner(Runner):
    """Runs a TensorRT engine through ``dsp_deploy.engines.TrtRunner``; GPU only."""

    device = "cuda"
    timing = "perf_counter_sync"

    def __init__(self, variant: Variant, *, name: str | None = None) -> None:
        super().__init__(name or f"trt:{variant.path.name}")
        self.variant = variant
        self._inner: Any = None

    def _activate(self) -> None:
        if not cuda_gpus():
            raise BackendUnavailable("no CUDA GPU visible; TensorRT engines need one")
        try:
            from dsp_deploy.engines import TrtRunner as EngineRunner
        except ImportError as exc:
            raise BackendUnavailable(f"dsp_deploy.engines is not available ({_first_line(exc)})") from None
        try:
            inner = EngineRunner(str(self.variant.path))
            if hasattr(inner, "activate"):
                inner.activate()
            elif hasattr(inner, "__enter__"):
                inner = inner.__enter__() or inner
        except Exception as exc:  # noqa: BLE001 - runtime missing / wrong GPU / version mismatch
            raise BackendUnavailable(f"TensorRT cannot run {self.variant.path.name}: {_first_line(exc)}") from None
        self._inner = inner

    def _deactivate(self) -> None:
        inner, self._inner = self._inner, None
        if hasattr(inner, "deactivate"):
            inner.deactivate()
        elif hasattr(inner, "__exit__"):
            inner.__exit__(None, None, None)

    def input_specs(self) -> list[InputSpec]:
        self._require_active("input_specs")
        specs = manifest_input_specs(self.variant.manifest)
        if specs:
            return specs
        if hasattr(self._inner, "input_specs"):
            return [InputSpec(s.name, tuple(s.shape), str(s.dtype)) for s in self._inner.input_specs()]
        raise BenchError(f"{self.variant.path}: the manifest lists no inputs and the engine runner exposes none")

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require_active("infer")
        return dict(self._inner.infer(dict(feed)))

    def _stage(self, feed: Mapping[str, np.ndarray]) -> Any:
        if hasattr(self._inner, "infer_device"):  # inputs go to the GPU once, untimed
            import torch

            return {name: torch.from_numpy(array).to("cuda") for name, array in feed.items()}
        return dict(feed)

    def timed_infer(self) -> int:
        """Time one synchronous engine call on staged inputs (the engine runner synchronises
        its stream before returning); falls back to the host-array ``infer``."""
        self._require_active("timed_infer")
        if self._staged is None:
            raise BenchError(f"runner '{self.name}': prepare(feed) must be called before timed_infer()")
        call = self._inner.infer_device if hasattr(self._inner, "infer_device") else self._inner.infer
        start = time.perf_counter_ns()
        call(self._staged)
        return time.perf_counter_ns() - start
