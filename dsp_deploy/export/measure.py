"""Timing candidate subgraphs in ONNX Runtime CPU, the way the benchmarks run models (the
runtime's session builder and timing loop): 1 intra-op thread, sequential, all graph
optimizations. Variants are interleaved and the minimum of the runs is kept (the least
disturbed estimate on a busy machine); results are cached on disk by (model bytes, batch,
ORT version, CPU) so a second export plans instantly.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dsp_deploy.errors import ExportError
from dsp_deploy.runtime.ort import OrtRunner, ort_session  # noqa: F401 - ort_session re-exported for the planner
from dsp_deploy.runtime.timing import time_interleaved as run_interleaved
from dsp_deploy.utils.atomic import write_text_atomic
from dsp_deploy.utils.jsonfile import DocFormat
from dsp_deploy.utils.machine import cpu_model

log = logging.getLogger(__name__)

# The planner's timing cache; the first releases wrote the entries as the whole (header-less) object.
COST_CACHE_FORMAT = DocFormat("export-costs", 1, "planner timing cache")


def time_interleaved(sessions: Mapping[str, Any], feed: np.ndarray, *, runs: int,
                     warmup: int = 2, min_seconds: float = 0.0) -> dict[str, list[float]]:
    """Per variant, ``runs`` wall times in ms (more while ``min_seconds`` have not passed),
    variants taking turns each round: ONNX Runtime sessions put through the one timing loop
    (``runtime.timing``)."""
    runners = {key: OrtRunner.from_session(sess, name=key) for key, sess in sessions.items()}
    for runner, sess in zip(runners.values(), sessions.values()):
        runner.prepare({sess.get_inputs()[0].name: feed})
    samples = run_interleaved(list(runners.values()), runs=runs, warmup=warmup, min_seconds=min_seconds)
    return dict(zip(runners, samples))


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dsp-deploy" / "export-costs.json"


class CostCache:
    """Measured ms (candidate name -> ms) per (set of subgraphs, batch) on this machine and
    ONNX Runtime version; a subgraph is keyed by its structure, not its weight values
    (``timing_bytes``). A damaged file is ignored; another kind of file, or one written by a
    newer dsp-deploy, is an ExportError (``--no-cache`` or another ``--cache`` path get past it)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, float]] = {}
        self.dirty = False
        if self.path and self.path.is_file():
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(self.path.read_text())
                if isinstance(data, dict) and "format" in data:
                    COST_CACHE_FORMAT.check(data, ExportError, str(self.path))
                    data = data.get("entries")
                if isinstance(data, dict):
                    self.entries = {k: v for k, v in data.items() if isinstance(v, dict)}

    @staticmethod
    def timing_bytes(model: Any) -> bytes:
        """What a subgraph's time depends on: the ONNX model with every float constant's values dropped
        (its shape and type kept; index constants kept whole). Timings of the same structure with other
        weights (a group-learned model, its masked or fine-tuned checkpoint) share one cache entry, so
        every export of a structure gets the plan its first timing chose."""
        import onnx

        stripped = onnx.ModelProto()
        stripped.CopyFrom(model)
        for tensor in stripped.graph.initializer:
            if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
                dims, dtype, name = list(tensor.dims), tensor.data_type, tensor.name
                tensor.Clear()
                tensor.dims.extend(dims)
                tensor.data_type, tensor.name = dtype, name
        return stripped.SerializeToString()

    @staticmethod
    def key(model_bytes: bytes, batch: int) -> str:
        import onnxruntime as ort

        digest = hashlib.sha1(model_bytes).hexdigest()[:20]
        return f"{digest}|b{batch}|ort{ort.__version__}|{cpu_model()}"

    def get(self, key: str) -> dict[str, float] | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict[str, float]) -> None:
        self.entries[key] = value
        self.dirty = True

    def save(self) -> None:
        if self.path and self.dirty:
            with contextlib.suppress(OSError):
                doc = {**COST_CACHE_FORMAT.header(), "entries": self.entries}
                write_text_atomic(self.path, json.dumps(doc, indent=0, sort_keys=True))
            self.dirty = False
