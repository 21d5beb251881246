"""`dsp-deploy compare`: DSP against channel-pruned baselines at matched FLOPs, measured side by side.

``run_compare(CompareConfig(...), out_dir)`` builds the variants, exports and benchmarks them and
writes the report folder; ``headline_rows(results)`` gives the summary lines a demo prints.
Importing this package does not import torch, onnx or onnxruntime.
"""
from __future__ import annotations

from dsp_deploy.compare.config import BASELINES, CompareConfig
from dsp_deploy.compare.pipeline import run_compare as _run
from dsp_deploy.compare.results import (
    CompareResult,
    VariantInfo,
    Verdict,
    headline_rows,
    read_results,
    verdicts,
)


def run_compare(*args, **kwargs):
    """See ``dsp_deploy.compare.pipeline.run_compare``."""
    return _run(*args, **kwargs)


__all__ = ["BASELINES", "CompareConfig", "CompareResult", "VariantInfo", "Verdict", "headline_rows",
           "read_results", "run_compare", "verdicts"]
