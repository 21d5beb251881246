"""ONNX Runtime: the one session builder (:func:`ort_session`) and the ``ort-cpu``/``ort-cuda`` runner.

Threads are pinned for reproducible CPU numbers: ``intra_op_num_threads`` = the requested count,
``inter_op_num_threads`` = 1, sequential execution. On CUDA the inputs are copied to the device
once in ``prepare`` and bound with IOBinding, so the timed call is the kernel work only
(``run_with_iobinding`` returns after the device stream is synchronised).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import BackendUnavailable, BenchError
from dsp_deploy.runtime.runner import InputSpec, Runner
from dsp_deploy.utils.ort_options import benchmark_session_options

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# ONNX Runtime type strings -> numpy dtype names.
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class OrtRunner(Runner):
    """Runs an ONNX file with ONNX Runtime on the CPU or CUDA execution provider."""

    def __init__(self, path: str | Path | bytes, *, cuda: bool = False, threads: int = 1,
                 name: str | None = None) -> None:
        label = "<in-memory model>" if isinstance(path, bytes) else Path(path).name
        super().__init__(name or f"{'ort-cuda' if cuda else 'ort-cpu'}:{label}")
        self.model = path if isinstance(path, bytes) else None  # serialized ONNX instead of a file
        self.path = Path(label) if isinstance(path, bytes) else Path(path)
        self.cuda = cuda
        self.threads = threads
        self.device = "cuda" if cuda else "cpu"
        self.timing = "perf_counter_sync" if cuda else "perf_counter"
        self._session: Any = None

    @classmethod
    def from_session(cls, session: Any, *, name: str = "session") -> OrtRunner:
        """An active CPU runner around an existing session (the export planner builds its own)."""
        runner = cls(b"", name=name)
        runner._session, runner.is_active = session, True
        return runner

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed ({exc})") from None
        if self.cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailable(
                "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu and a CUDA driver)"
            )
        self._session = ort_session(self.model if self.model is not None else self.path, threads=self.threads,
                                    cuda=self.cuda)
        if self.cuda and self._session.get_providers()[0] != "CUDAExecutionProvider":
            self._session = None
            raise BackendUnavailable("onnxruntime fell back from CUDAExecutionProvider (CUDA libraries missing?)")

    def _deactivate(self) -> None:
        self._session = None

    def input_specs(self) -> list[InputSpec]:
        self._require_active("input_specs")
        return session_input_specs(self._session, self.path)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require_active("infer")
        names = [out.name for out in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, dict(feed))))

    def _stage(self, feed: Mapping[str, np.ndarray]) -> Any:
        if not self.cuda:
            return dict(feed)
        import onnxruntime as ort

        binding = self._session.io_binding()
        values = {}
        for name, array in feed.items():
            values[name] = ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
            binding.bind_ortvalue_input(name, values[name])
        for out in self._session.get_outputs():
            binding.bind_output(out.name, "cuda", 0)
        return binding, values  # keep the device inputs alive with the binding

    def _run_staged(self, staged: Any) -> None:
        if not self.cuda:
            self._session.run(None, staged)
            return
        binding, _ = staged
        self._session.run_with_iobinding(binding)
        binding.synchronize_outputs()


def ort_session(model: str | Path | bytes, *, threads: int = 1, cuda: bool = False, options: Any = None) -> Any:
    """The one ``onnxruntime.InferenceSession`` builder: a file path or serialized ONNX bytes, with
    the benchmark settings for ``threads`` (``utils.ort_options``) unless ``options`` are given,
    on the CPU or CUDA provider. A one-line BenchError naming the file if ONNX Runtime cannot load it."""
    import onnxruntime as ort

    options = options if options is not None else benchmark_session_options(threads)
    providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "<in-memory model>" if isinstance(model, bytes) else str(model)
        raise BenchError(f"{where}: ONNX Runtime cannot load the model: {first}") from None


def session_input_specs(session: Any, path: str | Path) -> list[InputSpec]:
    """The session's inputs as InputSpecs (dynamic dims as None); BenchError for unsupported types."""
    specs = []
    for arg in session.get_inputs():
        dtype = _ORT_DTYPES.get(arg.type)
        if dtype is None:
            raise BenchError(f"{path}: input '{arg.name}' has unsupported type {arg.type}")
        shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
        specs.append(InputSpec(arg.name, shape, dtype))
    return specs
