"""Latency benchmarks of ONNX files, TensorRT engines and checkpoints across backends.

``run_benchmark`` returns ``ResultRow``s; ``format_table`` / ``write_json`` / ``read_json`` present
and store them. Backends live one per module (``ort``, ``torch_runner``, ``trt``) behind the
``Runner`` interface and import their runtime only when activated.
"""
from __future__ import annotations

from dsp_deploy.bench.harness import (
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    RunnerOptions,
    make_runner,
    run_benchmark,
)
from dsp_deploy.bench.results import ResultRow, describe_machine, format_table, read_json, write_json
from dsp_deploy.bench.variants import BACKENDS, Variant, load_variant, variants_from_args
from dsp_deploy.errors import BackendUnavailable
from dsp_deploy.runtime.runner import InputSpec, Runner, make_feed
from dsp_deploy.runtime.stats import Summary, percentile, summarize

__all__ = [
    "BACKENDS", "DEFAULT_RUNS", "DEFAULT_WARMUP", "BackendUnavailable", "InputSpec", "ResultRow", "Runner",
    "RunnerOptions", "Summary", "Variant", "describe_machine", "format_table", "load_variant", "make_feed",
    "make_runner", "percentile", "read_json", "run_benchmark", "summarize", "variants_from_args", "write_json",
]
