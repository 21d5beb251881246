"""Where an ONNX model's time goes in ONNX Runtime CPU.

Runs the model with ORT's profiler (the benchmark session settings: 1 intra-op thread unless
told otherwise, sequential, all graph optimizations), takes each node's median kernel time over
the runs and sums it into categories a pruning user can act on:

- ``fixed convs``: the stem and the downsample (projection) convs, which DSP does not prune;
- ``block convs``: every other conv (the pruned ones);
- ``data movement``: Gather/Slice/Pad/Concat/Split/Transpose and ORT's NCHWc reorders, i.e. the
  price of feeding grouped convs their channels;
- ``residual add + relu``: Add/Sum/Relu left as separate nodes (fused ones cost nothing here);
- ``classifier and pooling``: Gemm/MatMul and the pools; ``other``: the rest.

Node names follow the exporter's layer names (``layer1.0.downsample.0...``, ``conv1...``; ORT keeps
them in the names of the nodes it rewrites), so the split needs no topology.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dsp_deploy.errors import BenchError
from dsp_deploy.runtime.ort import OrtRunner, ort_session, session_input_specs
from dsp_deploy.runtime.runner import make_feed
from dsp_deploy.runtime.timing import time_interleaved
from dsp_deploy.utils.ort_options import benchmark_session_options

log = logging.getLogger(__name__)

CATEGORIES = ("fixed convs", "block convs", "data movement", "residual add + relu", "classifier and pooling", "other")
_MOVEMENT = {"Gather", "Slice", "Pad", "Concat", "Split", "Transpose", "ReorderInput", "ReorderOutput"}
_MERGE = {"Add", "Sum", "Relu"}
_HEAD = {"Gemm", "MatMul", "GlobalAveragePool", "MaxPool", "AveragePool", "Flatten"}
_CONV = {"Conv", "FusedConv", "NchwcConv"}


@dataclass(frozen=True)
class NodeTime:
    """One executed node: ORT's name for it, its op type and its median kernel time."""

    name: str
    op: str
    ms: float


def category_of(node: NodeTime) -> str:
    """The category of one node (see the module docstring)."""
    if node.op in _CONV:
        fixed = "downsample" in node.name or node.name.startswith("conv1.") or node.name.startswith("conv1_")
        return "fixed convs" if fixed else "block convs"
    if node.op in _MOVEMENT:
        return "data movement"
    if node.op in _MERGE:
        return "residual add + relu"
    if node.op in _HEAD:
        return "classifier and pooling"
    return "other"


def profile_nodes(path: str | os.PathLike[str], batch: int, *, input_shape: tuple[int, ...] | None = None,
                  runs: int = 20, threads: int = 1, seed: int = 0) -> list[NodeTime]:
    """Per executed node of the ONNX file, the median kernel time in ms over ``runs`` profiled
    runs on random inputs of ``batch`` (after one untimed run), in execution order."""
    if runs < 1:
        raise BenchError(f"profiling needs at least one run, got {runs}")
    options = benchmark_session_options(threads)
    with tempfile.TemporaryDirectory(prefix="dsp-profile-") as folder:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "ort")
        session = ort_session(path, options=options)
        runner = OrtRunner.from_session(session, name=str(path))
        runner.prepare(make_feed(session_input_specs(session, path), batch, input_shape, seed=seed, where=str(path)))
        time_interleaved([runner], runs=runs, warmup=1)  # the runtime's loop; ORT's profiler records the kernels
        events = json.loads(Path(session.end_profiling()).read_text())
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            samples[(name[: -len("_kernel_time")], event["args"]["op_name"])].append(event["dur"] / 1e3)
    # every node ran runs + 1 times; drop the first (untimed) sample of each
    return [NodeTime(name, op, statistics.median(times[1:] or times)) for (name, op), times in samples.items()]


def summarize_categories(nodes: list[NodeTime]) -> dict[str, float]:
    """ms per category (all of CATEGORIES, zeros included) plus ``total``."""
    sums = dict.fromkeys(CATEGORIES, 0.0)
    for node in nodes:
        sums[category_of(node)] += node.ms
    sums["total"] = sum(node.ms for node in nodes)
    return sums


def format_breakdown(columns: Mapping[str, Mapping[str, float]], *, baseline: str | None = None) -> str:
    """A markdown table: one row per category, one column per model (ms), plus, when
    ``baseline`` names a column, each other column's time as a fraction of the baseline's total."""
    names = list(columns)
    header = ["category", *[f"{n} ms" for n in names]]
    if baseline is not None:
        header += [f"{n} share of {baseline} total" for n in names if n != baseline]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for category in (*CATEGORIES, "total"):
        cells = [category, *[f"{columns[n][category]:.2f}" for n in names]]
        if baseline is not None:
            total = columns[baseline]["total"] or 1.0
            cells += [f"{100 * columns[n][category] / total:.1f}%" for n in names if n != baseline]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def breakdown_onnx_files(paths: Mapping[str, str | os.PathLike[str]], batch: int, *,
                         input_shape: tuple[int, ...] | None = None, runs: int = 20, threads: int = 1,
                         seed: int = 0) -> dict[str, dict[str, float]]:
    """Category sums per named ONNX file at one batch size (same random input for all)."""
    columns: dict[str, dict[str, float]] = {}
    for name, path in paths.items():
        nodes = profile_nodes(path, batch, input_shape=input_shape, runs=runs, threads=threads, seed=seed)
        columns[name] = summarize_categories(nodes)
        log.info("%s: %.2f ms of kernel time at batch %d", name, columns[name]["total"], batch)
    return columns
