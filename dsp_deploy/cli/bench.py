"""`dsp-deploy bench`: latency of ONNX files, TensorRT engines and checkpoints per backend and batch.

Thin wrapper over ``dsp_deploy.bench``: parses options, runs ``run_benchmark``, prints the table
and optionally writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from dsp_deploy.bench import describe_machine, format_table, run_benchmark, variants_from_args, write_json
from dsp_deploy.bench.breakdown import breakdown_onnx_files, format_breakdown
from dsp_deploy.bench.variants import parse_batches, parse_input_shape
from dsp_deploy.errors import UsageError

if TYPE_CHECKING:
    from dsp_deploy.bench.variants import Variant

log = logging.getLogger(__name__)

_BACKENDS = "ort-cpu, ort-cuda, torch, torch-cuda, trt"  # kept in sync with bench.variants.BACKENDS


def add_parser(subparsers: Any) -> None:
    """Register the `bench` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="measure inference latency (median/p90/p99) of models on one or more backends",
        description="Benchmark models interleaved (one timed run of each per round) after warm-up; "
        "backends without their runtime here are reported as skipped.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="ONNX file, .engine/.plan (with JSON manifest beside) or checkpoint .pt; "
                        "NAME=PATH sets the variant name")
    parser.add_argument("--backend", default="ort-cpu,torch,trt",
                        help=f"comma-separated backends among: {_BACKENDS} (default: %(default)s; "
                        "each model runs on those that read its file kind)")
    parser.add_argument("--batch", default="1", help="comma-separated batch sizes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op CPU threads for every backend (default: usable cores)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--runs", type=int, default=None, help="timed rounds per batch size (default: 100)")
    budget.add_argument("--time-budget", type=float, default=None, metavar="S",
                        help="time rounds until S seconds pass, per batch size")
    parser.add_argument("--warmup", type=int, default=10, help="untimed rounds first (default: %(default)s)")
    parser.add_argument("--cuda-graphs", action="store_true", help="torch-cuda: time CUDA-graph replays")
    parser.add_argument("--input-shape", default=None, metavar="CxHxW",
                        help="per-sample input shape where the model does not fix it (checkpoints, dynamic ONNX)")
    parser.add_argument("--baseline", default=None, metavar="NAME",
                        help="variant name (or path) to compute speedups against")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--json", default=None, metavar="OUT", help="write result rows to this JSON file")
    parser.add_argument("--breakdown", action="store_true",
                        help="also profile each ONNX model in ONNX Runtime CPU at the first batch size and "
                        "print where its time goes (fixed convs, block convs, data movement, residual adds); "
                        "1 thread unless --threads")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args``; returns the exit code."""
    variants = variants_from_args(args.models)
    baseline = args.baseline
    if baseline is not None:
        by_path = {str(v.path): v.name for v in variants}
        baseline = by_path.get(baseline, baseline)
        if baseline not in {v.name for v in variants}:
            raise UsageError(f"--baseline '{args.baseline}' is not one of: {', '.join(v.name for v in variants)}")
    rows = run_benchmark(
        variants, args.backend, args.batch,
        threads=args.threads, runs=args.runs, warmup=args.warmup, time_budget=args.time_budget,
        cuda_graphs=args.cuda_graphs, input_shape=args.input_shape, seed=args.seed,
        progress=None if not args.quiet else False,
    )
    print(describe_machine(rows))
    print(format_table(rows, baseline=baseline))
    if args.breakdown:
        print(_breakdown(variants, args, baseline))
    if args.json:
        write_json(rows, args.json)
        log.info("wrote %d rows to %s", len(rows), args.json)
    return 0


def _breakdown(variants: list[Variant], args: argparse.Namespace, baseline: str | None) -> str:
    """The ORT-profiler category table of the ONNX variants (see dsp_deploy.bench.breakdown)."""
    onnx_files = {v.name: v.path for v in variants if v.kind == "onnx"}
    if not onnx_files:
        return "breakdown: no ONNX model among the inputs (it profiles ONNX files in ONNX Runtime CPU)"
    batch = parse_batches(args.batch)[0]
    columns = breakdown_onnx_files(onnx_files, batch, input_shape=parse_input_shape(args.input_shape),
                                   threads=args.threads or 1, seed=args.seed)
    title = f"where the time goes (ONNX Runtime CPU profiler, batch {batch}, median kernel ms per node, summed)"
    return title + "\n" + format_breakdown(columns, baseline=baseline if baseline in columns else None)
