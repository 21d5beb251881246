"""The benchmark loop: activate every (variant, backend) runner, then per batch size warm up and
time them interleaved (A B C A B C ...: one timed run of each per round), so slow drift of the
machine (clocks, thermals, background load) hits every variant alike.

Only the inference call is timed (``Runner.timed_infer``); inputs are generated and staged before.
Backends whose runtime is missing become ``skipped`` rows with the reason, never an error.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dsp_deploy.bench.results import ResultRow, describe_machine, format_table, read_json, write_json
from dsp_deploy.bench.variants import (
    Variant,
    check_batches,
    load_variant,
    parse_backends,
    parse_batches,
    parse_input_shape,
)
from dsp_deploy.errors import BackendUnavailable, BenchError, UsageError
from dsp_deploy.runtime import registry
from dsp_deploy.runtime.registry import RunnerSettings
from dsp_deploy.runtime.runner import Runner, make_feed, resolve_shape
from dsp_deploy.runtime.stats import summarize
from dsp_deploy.runtime.timing import time_interleaved
from dsp_deploy.utils.machine import library_versions, machine_info, usable_cores

__all__ = [
    "DEFAULT_RUNS", "DEFAULT_WARMUP", "ResultRow", "RunnerOptions", "RunnerFactory", "describe_machine",
    "format_table", "make_runner", "read_json", "run_benchmark", "time_interleaved", "write_json",
]

log = logging.getLogger(__name__)

DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10


@dataclass(frozen=True)
class RunnerOptions:
    """Settings every runner of one benchmark shares."""

    threads: int
    cuda_graphs: bool = False
    input_shape: tuple[int, ...] | None = None


RunnerFactory = Callable[[Variant, str, RunnerOptions], Runner]


def make_runner(variant: Variant, backend: str, options: RunnerOptions) -> Runner:
    """The runner for ``backend`` on ``variant`` (from the runtime's backend registry)."""
    settings = RunnerSettings(threads=options.threads, cuda_graphs=options.cuda_graphs, input_shape=options.input_shape,
                              kind=variant.kind, manifest=variant.manifest, name=f"{variant.name}/{backend}")
    return registry.make_runner(backend, variant.path, settings)


def _validate(runs: int | None, time_budget: float | None, warmup: int, threads: int | None,
              min_seconds: float = 0.0) -> int | None:
    if runs is not None and time_budget is not None:
        raise UsageError("give either runs or a time budget, not both")
    if not min_seconds >= 0:
        raise UsageError(f"min seconds must be >= 0, got {min_seconds}")
    if min_seconds and time_budget is not None:
        raise UsageError("give either a time budget or a minimum time, not both")
    if runs is not None and runs < 1:
        raise UsageError(f"runs must be >= 1, got {runs}")
    if time_budget is not None and not time_budget > 0:
        raise UsageError(f"time budget must be > 0 seconds, got {time_budget}")
    if warmup < 0:
        raise UsageError(f"warmup must be >= 0, got {warmup}")
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be >= 1, got {threads}")
    return DEFAULT_RUNS if runs is None and time_budget is None else runs


def _plan(variants: Sequence[Variant], backends: Sequence[str]) -> list[tuple[Variant, str]]:
    """(variant, backend) pairs to run; backends that cannot read a variant's file kind are left out."""
    pairs = []
    for variant in variants:
        usable = [b for b in backends if b in variant.backends]
        if not usable:
            raise BenchError(
                f"{variant.path}: none of the backends {', '.join(backends)} runs {variant.kind} files "
                f"(use {', '.join(variant.backends)})"
            )
        pairs += [(variant, b) for b in usable]
    return pairs


def run_benchmark(
    variants: Sequence[Variant | str | Path],
    backends: Sequence[str] | str = ("ort-cpu",),
    batches: Sequence[int] | str = (1,),
    *,
    threads: int | None = None,
    runs: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    time_budget: float | None = None,
    min_seconds: float = 0.0,
    cuda_graphs: bool = False,
    input_shape: Sequence[int] | str | None = None,
    seed: int = 0,
    runner_factory: RunnerFactory | None = None,
    progress: bool | None = None,
) -> list[ResultRow]:
    """Benchmark every variant on every applicable backend at every batch size.

    ``runs`` timed rounds (default 100) or rounds until ``time_budget`` seconds pass, per batch
    size, after ``warmup`` untimed rounds; ``min_seconds`` adds rounds until that much time has
    passed. Rows come batch by batch, in variant/backend order.
    Raises BenchError/UsageError on bad input before anything is timed.
    """
    variants = [v if isinstance(v, Variant) else load_variant(v) for v in variants]
    if not variants:
        raise UsageError("no model to benchmark")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UsageError(f"variant names must be unique: {', '.join(names)}")
    backend_list = parse_backends(backends)
    batch_list = parse_batches(batches)
    shape = parse_input_shape(input_shape)
    runs = _validate(runs, time_budget, warmup, threads, min_seconds)
    options = RunnerOptions(threads or usable_cores(), cuda_graphs, shape)
    for variant in variants:
        check_batches(variant, batch_list)
    pairs = _plan(variants, backend_list)
    factory = runner_factory or make_runner
    machine, versions = machine_info(), library_versions()

    active: list[tuple[Variant, str, Runner]] = []
    skipped: dict[tuple[str, str], str] = {}
    try:
        for variant, backend in pairs:
            try:
                runner = factory(variant, backend, options)
                runner.activate()
            except BackendUnavailable as exc:
                skipped[(variant.name, backend)] = str(exc)
                log.warning("skipping %s on %s: %s", variant.name, backend, exc)
                continue
            active.append((variant, backend, runner))
        specs = {id(r): r.input_specs() for _, _, r in active}
        for variant, _, runner in active:  # every batch must fit every model before timing starts
            for batch in batch_list:
                for spec in specs[id(runner)]:
                    resolve_shape(spec, batch, shape if len(specs[id(runner)]) == 1 else None,
                                  where=str(variant.path))

        rows: list[ResultRow] = []
        for batch in batch_list:
            shapes = {}
            for variant, _, runner in active:
                feed = make_feed(specs[id(runner)], batch, shape, seed=seed + batch, where=str(variant.path))
                shapes[id(runner)] = {k: list(a.shape) for k, a in feed.items()}
                runner.prepare(feed)
            runners = [r for _, _, r in active]
            samples = time_interleaved(runners, runs=runs, warmup=warmup, time_budget=time_budget,
                                       min_seconds=min_seconds, desc=f"batch {batch}",
                                       progress=progress) if runners else []
            if samples and len(samples[0]) < 20:
                log.warning("batch %d: only %d timed run(s) per variant; p90/p99 are not meaningful",
                            batch, len(samples[0]))
            by_pair = {(v.name, b): (r, s) for (v, b, r), s in zip(active, samples)}
            for variant, backend in pairs:
                row = ResultRow(variant=variant.name, path=str(variant.path), backend=backend, batch=batch,
                                kind=variant.kind, threads=options.threads, warmup=warmup,
                                device=registry.backend(backend).device,
                                machine=dict(machine), versions=dict(versions))
                if (variant.name, backend) in skipped:
                    row.status, row.reason = "skipped", skipped[(variant.name, backend)]
                else:
                    runner, times = by_pair[(variant.name, backend)]
                    _fill(row, runner, times, shapes[id(runner)])
                    log.info("%s %s batch %d: median %.3f ms over %d runs", variant.name, backend, batch,
                             row.median_ms, row.runs)
                rows.append(row)
        return rows
    finally:
        for _, _, runner in active:
            runner.deactivate()


def _fill(row: ResultRow, runner: Runner, times: list[float], shapes: dict[str, list[int]]) -> None:
    stats = summarize(times)
    row.runs = stats.runs
    row.median_ms, row.p90_ms, row.p99_ms = stats.median_ms, stats.p90_ms, stats.p99_ms
    row.mean_ms, row.min_ms, row.max_ms, row.std_ms = stats.mean_ms, stats.min_ms, stats.max_ms, stats.std_ms
    row.throughput = row.batch * 1000.0 / stats.median_ms if stats.median_ms > 0 else None
    row.device, row.timing = runner.device, runner.timing
    row.cuda_graphs = bool(getattr(runner, "cuda_graphs", False))
    row.input_shapes = shapes
    row.samples_ms = [round(t, 6) for t in times]
