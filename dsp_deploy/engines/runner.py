"""`TrtRunner`: run a built plan on the GPU through the TensorRT runtime and torch CUDA tensors.

Loading is lazy (``activate()`` or the first ``infer``). Where there is no CUDA GPU (or the plan
cannot be loaded) it raises ``BenchError`` with one clear line; the bench stage turns that into
a skipped row. ``infer`` takes and returns numpy arrays; ``infer_device`` keeps torch tensors on
the GPU so timing loops measure compute, not copies.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy.engines.flavour import dtype_name, flavour_version, trt_logger, trt_module
from dsp_deploy.errors import BenchError, DSPDeployError

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger(__name__)


class TrtRunner:
    """One engine, one execution context, one CUDA stream."""

    def __init__(self, engine_path: str | os.PathLike[str], *, flavour: str | None = None) -> None:
        self.engine_path = Path(engine_path)
        self.flavour = flavour
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._module: Any = None

    def __enter__(self) -> TrtRunner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @property
    def is_active(self) -> bool:
        return self._context is not None

    def activate(self) -> None:
        """Load the plan and create the execution context (``BenchError`` without a GPU)."""
        if self.is_active:
            return
        if not self.engine_path.is_file():
            raise BenchError(f"engine file not found: {self.engine_path}")
        import torch

        if not torch.cuda.is_available():
            raise BenchError(f"TrtRunner needs a GPU: torch sees no CUDA device (engine {self.engine_path.name})")
        try:
            module, flavour = trt_module(self.flavour)
        except DSPDeployError as exc:
            raise BenchError(str(exc)) from None
        trt_log = trt_logger(module)
        with trt_log.capture() as capture:
            runtime = module.Runtime(trt_log.logger)
            engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            context = engine.create_execution_context() if engine is not None else None
        if context is None:
            raise BenchError(
                f"{flavour} {flavour_version(module)} cannot load {self.engine_path.name}: "
                f"{capture.last_error() or 'no engine'} (built by another TensorRT flavour/version?)"
            )
        self._module, self._runtime, self._engine, self._context = module, runtime, engine, context
        self._stream = torch.cuda.Stream()
        log.debug("loaded %s with %s", self.engine_path, flavour)

    def deactivate(self) -> None:
        """Free the context and engine; safe to call twice."""
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
