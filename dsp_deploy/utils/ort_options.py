"""The ONNX Runtime session settings every timing in the tool uses (planner, benchmarks,
profiler), in one place so their numbers stay comparable."""
from __future__ import annotations

from typing import Any


def benchmark_session_options(threads: int = 1) -> Any:
    """``onnxruntime.SessionOptions``: ``threads`` intra-op threads, 1 inter-op thread, sequential
    execution, all graph optimizations, warnings off, and no spinning of idle intra-op workers
    (with interleaved timing, a session that just ran would otherwise keep its workers spinning
    on the cores the next session needs: measured 11 ms vs 3.3 ms median for ResNet-20 batch 8
    at 2 threads on 2 cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
