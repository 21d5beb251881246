"""`TrtRunner`: the one TensorRT runner. Runs a built engine on the GPU through the TensorRT
runtime and torch CUDA tensors, with the common ``Runner`` lifecycle (bench, compare, the
TensorRT lowering planner and serving all use this class).

Loading is lazy (``activate()`` or the first ``infer``). Without a CUDA GPU, TensorRT or a
loadable plan it raises ``BackendUnavailable`` (a ``BenchError``) with one clear line; the bench
turns that into a skipped row. ``infer`` takes and returns numpy arrays; ``infer_device`` keeps
torch tensors on the GPU, and ``prepare``/``timed_infer`` time it on inputs staged on the GPU
once, so timing loops measure compute, not copies (the call synchronises its stream).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import BackendUnavailable, BenchError, DSPDeployError
from dsp_deploy.runtime.polygraphy import engine_from_bytes
from dsp_deploy.runtime.runner import InputSpec, Runner
from dsp_deploy.runtime.trt_flavour import dtype_name, flavour_version, one_line, trt_logger, trt_module
from dsp_deploy.runtime.trt_manifest import EngineManifest
from dsp_deploy.utils.machine import cuda_gpus

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger(__name__)


def manifest_input_specs(manifest: EngineManifest | None) -> list[InputSpec]:
    """Inputs listed in an engine manifest (``inputs``: name, shape, dtype); negative dims are dynamic."""
    specs = []
    for item in manifest.inputs if manifest is not None else []:
        if isinstance(item, dict) and "name" in item and "shape" in item:
            shape = tuple(int(d) if isinstance(d, int) and d > 0 else None for d in item["shape"])
            specs.append(InputSpec(str(item["name"]), shape, str(item.get("dtype", "float32"))))
    return specs


class TrtRunner(Runner):
    """One engine, one execution context, one CUDA stream; GPU only."""

    device = "cuda"
    timing = "perf_counter_sync"

    def __init__(self, engine_path: str | os.PathLike[str], *, flavour: str | None = None,
                 manifest: EngineManifest | None = None, name: str | None = None) -> None:
        self.engine_path = Path(engine_path)
        super().__init__(name or f"trt:{self.engine_path.name}")
        self.flavour = flavour
        self.manifest = manifest
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._module: Any = None

    def _activate(self) -> None:
        if not self.engine_path.is_file():
            raise BenchError(f"engine file not found: {self.engine_path}")
        if not cuda_gpus():
            raise BackendUnavailable(f"TrtRunner needs a GPU: no CUDA GPU visible (engine {self.engine_path.name})")
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(
                f"TrtRunner needs a GPU: torch sees no CUDA device (engine {self.engine_path.name})")
        try:
            module, flavour = trt_module(self.flavour)
        except DSPDeployError as exc:
            raise BackendUnavailable(str(exc)) from None
        trt_log = trt_logger(module)
        try:
            with trt_log.capture() as capture:
                engine = engine_from_bytes(module, flavour, self.engine_path.read_bytes())  # Polygraphy's loader
                context = engine.create_execution_context() if engine is not None else None
        except Exception as exc:  # noqa: BLE001 - runtime missing / wrong GPU / version mismatch
            raise BackendUnavailable(f"TensorRT cannot run {self.engine_path.name}: {one_line(str(exc))}") from None
        if context is None:
            raise BackendUnavailable(
                f"{flavour} {flavour_version(module)} cannot load {self.engine_path.name}: "
                f"{capture.last_error() or 'no engine'} (built by another TensorRT flavour/version?)"
            )
        self._module, self._engine, self._context = module, engine, context
        self._stream = torch.cuda.Stream()
        log.debug("loaded %s with %s", self.engine_path, flavour)

    def _deactivate(self) -> None:
        self._context = self._engine = self._stream = None

    def _names(self, want_input: bool) -> list[str]:
        mode = self._module.TensorIOMode.INPUT
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        return [n for n in names if (self._engine.get_tensor_mode(n) == mode) == want_input]

    @property
    def input_names(self) -> list[str]:
        self.activate()
        return self._names(True)

    @property
    def output_names(self) -> list[str]:
        self.activate()
        return self._names(False)

    def input_specs(self) -> list[InputSpec]:
        """From the manifest when it lists inputs, else from the engine (-1 dims are dynamic)."""
        self._require_active("input_specs")
        specs = manifest_input_specs(self.manifest)
        if specs:
            return specs
        return [InputSpec(n, tuple(int(d) if d > 0 else None for d in self._engine.get_tensor_shape(n)),
                          dtype_name(self._engine.get_tensor_dtype(n))) for n in self._names(True)]

    def _torch_dtype(self, name: str) -> torch.dtype:
        import torch

        dtype = getattr(torch, dtype_name(self._engine.get_tensor_dtype(name)), None)
        if not isinstance(dtype, torch.dtype):
            raise BenchError(f"engine {self.engine_path.name}: tensor '{name}' has a dtype torch cannot hold")
        return dtype

    def infer_device(self, feed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run on CUDA tensors (shapes must lie in the engine's profile); returns CUDA tensors."""
        import torch

        self.activate()
        missing = set(self._names(True)) - set(feed)
        if missing:
            raise BenchError(f"engine {self.engine_path.name}: missing inputs {sorted(missing)}")
        context = self._context
        keep = []
        for name in self._names(True):
            tensor = feed[name].to(device="cuda", dtype=self._torch_dtype(name)).contiguous()
            keep.append(tensor)
            if not context.set_input_shape(name, tuple(tensor.shape)):
                raise BenchError(f"engine {self.engine_path.name}: input '{name}' shape {tuple(tensor.shape)} "
                                 "is outside the engine's optimization profile")
            context.set_tensor_address(name, tensor.data_ptr())
        outputs: dict[str, torch.Tensor] = {}
        for name in self._names(False):
            shape = tuple(context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self._torch_dtype(name), device="cuda")
            context.set_tensor_address(name, outputs[name].data_ptr())
        self._stream.wait_stream(torch.cuda.current_stream())
        if not context.execute_async_v3(self._stream.cuda_stream):
            raise BenchError(f"engine {self.engine_path.name}: execute_async_v3 failed")
        torch.cuda.current_stream().wait_stream(self._stream)
        self._stream.synchronize()
        return outputs

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on host arrays, return host arrays (for correctness checks, not for timing)."""
        import torch

        tensors = {name: torch.from_numpy(array) for name, array in feed.items()}
        return {name: out.cpu().numpy() for name, out in self.infer_device(tensors).items()}

    def _stage(self, feed: Mapping[str, np.ndarray]) -> Any:
        import torch

        return {name: torch.from_numpy(array).to("cuda") for name, array in feed.items()}  # untimed copy

    def _run_staged(self, staged: Any) -> None:
        self.infer_device(staged)
