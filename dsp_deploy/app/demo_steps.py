"""The demo's deployment step: export the fine-tuned DSP model, the dense model and a channel-
pruned baseline at matched FLOPs, and time them side by side, so the demo ends with the headline
rows of the benchmark (what the pruning buys in measured speed, not only in FLOPs)."""
from __future__ import annotations

from typing import Any

from dsp_deploy.compare import CompareConfig, headline_rows, run_compare


def step_export_and_compare(state: Any) -> None:
    """Quick matched-FLOPs comparison of the fine-tuned checkpoint (ONNX Runtime CPU, 1 thread);
    the exported ONNX files (DSP with `--lowering auto`, parity-checked) stay in compare/models/."""
    out = state.out / "compare"
    config = CompareConfig(checkpoint=state.files["fine-tuned checkpoint"], baselines=("l1-inner",),
                           batches=(1, 32), threads=(1,), quick=True)
    result = run_compare(config, out, progress=state.options.progress)
    state.files["ONNX models"] = str(out / "models")
    state.files["benchmark report"] = str(out / "report.md")
    state.results["headline"] = headline_rows(result)
