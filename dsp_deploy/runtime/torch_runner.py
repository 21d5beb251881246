"""PyTorch runners: eager modules, dsp-deploy checkpoints and TorchScript, on CPU or CUDA.

CPU timing is ``perf_counter_ns`` around the forward call with ``torch.set_num_threads`` pinned.
CUDA timing uses CUDA events recorded around the call on the current stream, so host-side
launch overhead counts but host<->device copies (done in ``prepare``) do not. With
``cuda_graphs=True`` the forward is captured once per input shape and timed as a graph replay.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy import checkpoint
from dsp_deploy.errors import BackendUnavailable, BenchError
from dsp_deploy.runtime.runner import InputSpec, Runner

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger(__name__)


def _guess_input_shape(model: torch.nn.Module, where: str) -> tuple[int, ...]:
    """Per-sample input shape for image CNNs without one recorded: from the first conv weight
    (7x7 stem -> ImageNet 224x224, else CIFAR 32x32)."""
    for _, param in model.named_parameters():
        if param.dim() == 4:
            channels, kernel = int(param.shape[1]), int(param.shape[-1])
            shape = (channels, 224, 224) if kernel >= 7 else (channels, 32, 32)
            log.info("%s: no input shape recorded; assuming %s from the first conv (pass --input-shape "
                     "to override)", where, "x".join(map(str, shape)))
            return shape
    raise BenchError(f"{where}: cannot tell the model's input shape; pass --input-shape CxHxW")


class TorchRunner(Runner):
    """Runs a torch module (given, or loaded from a checkpoint / TorchScript file)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        module: torch.nn.Module | None = None,
        kind: str = "checkpoint",
        cuda: bool = False,
        cuda_graphs: bool = False,
        threads: int = 1,
        input_shape: Sequence[int] | None = None,
        name: str | None = None,
        channels_last: bool = False,
    ) -> None:
        label = Path(path).name if path is not None else type(module).__name__
        super().__init__(name or f"{'torch-cuda' if cuda else 'torch'}:{label}")
        if path is None and module is None:
            raise BenchError("TorchRunner needs a path or a module")
        self.path = Path(path) if path is not None else None
        self.kind = kind
        self.cuda = cuda
        self.cuda_graphs = cuda_graphs and cuda
        self.threads = threads
        self.channels_last = channels_last  # stage 4-D inputs in NHWC (for modules converted to channels_last)
        self.device = "cuda" if cuda else "cpu"
        self.timing = "cuda_event" if cuda else "perf_counter"
        self._given = module
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self._model: Any = None
        self._dtype = "float32"
        self._old_threads: int | None = None
        self._graphs: dict[tuple, Any] = {}

    # -- lifetime ---------------------------------------------------------------------------
    def _activate(self) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"torch is not installed ({exc})") from None
        if self.cuda and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch {torch.__version__} sees no CUDA GPU")
        model = self._given if self._given is not None else self._load(torch)
        model = model.eval()
        if self.cuda:
            model = model.to("cuda")
        first = next(iter(model.parameters()), None)
        if first is not None and first.is_floating_point():
            self._dtype = str(first.dtype).replace("torch.", "")
        if self._input_shape is None:
            self._input_shape = tuple(getattr(model, "input_shape", ()) or ()) or _guess_input_shape(
                model, str(self.path or self.name)
            )
        self._old_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self._model = model

    def _load(self, torch: Any) -> torch.nn.Module:
        assert self.path is not None
        if self.kind == "torchscript":
            try:
                return torch.jit.load(str(self.path), map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - TorchScript errors are RuntimeError/ValueError/...
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BenchError(f"{self.path}: cannot load TorchScript: {first}") from None
        loaded = checkpoint.load_checkpoint(str(self.path))  # = load_model, keeping the input size
        model = checkpoint.build_model(loaded)
        size = getattr(getattr(loaded, "structure", None), "input_size", None)
        if self._input_shape is None and size:
            channels = next((int(p.shape[1]) for p in model.parameters() if p.dim() == 4), 3)
            self._input_shape = (channels, *(int(s) for s in size))
        return model

    def _deactivate(self) -> None:
        import torch

        self._graphs.clear()
        self._model = None
        if self._old_threads is not None:
            torch.set_num_threads(self._old_threads)
        if self.cuda:
            torch.cuda.empty_cache()

    # -- inference --------------------------------------------------------------------------
    def input_specs(self) -> list[InputSpec]:
        self._require_active("input_specs")
        assert self._input_shape is not None
        return [InputSpec("input", (None, *self._input_shape), self._dtype)]

    def _forward(self, tensors: list[torch.Tensor]) -> Any:
        return self._model(*tensors)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        self._require_active("infer")
        with torch.inference_mode():
            tensors = [torch.from_numpy(a).to(self.device) for a in feed.values()]
            out = self._forward(tensors)
        if isinstance(out, torch.Tensor):
            return {"output": out.cpu().numpy()}
        if isinstance(out, dict):
            return {str(k): v.cpu().numpy() for k, v in out.items()}
        return {f"output_{i}": v.cpu().numpy() for i, v in enumerate(out)}

    def _stage(self, feed: Mapping[str, np.ndarray]) -> Any:
        import torch

        tensors = [torch.from_numpy(a).to(self.device).contiguous() for a in feed.values()]
        if self.channels_last:
            tensors = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in tensors]
        if not self.cuda_graphs:
            return tensors
        key = tuple(tuple(t.shape) for t in tensors)
        if key not in self._graphs:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):  # warm-up on a side stream, as graph capture requires
                    self._forward(tensors)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.no_grad():
                self._forward(tensors)
            self._graphs[key] = (graph, tensors)
        graph, static = self._graphs[key]
        for dst, src in zip(static, tensors):
            dst.copy_(src)
        torch.cuda.synchronize()
        return graph

    def timed_infer(self) -> int:
        """CPU: perf_counter_ns around the forward; CUDA: events around the forward or graph replay.
        ``inference_mode`` is entered outside the timed region."""
        import torch

        self._require_active("timed_infer")
        if self._staged is None:
            raise BenchError(f"runner '{self.name}': prepare(feed) must be called before timed_infer()")
        with torch.inference_mode():
            if not self.cuda:
                begin = time.perf_counter_ns()
                self._forward(self._staged)
                return time.perf_counter_ns() - begin
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            if self.cuda_graphs:
                self._staged.replay()
            else:
                self._forward(self._staged)
            end.record()
        end.synchronize()
        return int(start.elapsed_time(end) * 1e6)
