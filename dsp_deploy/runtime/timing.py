"""The one interleaved timing loop: every timing in the tool (bench, compare, the export
planners, the profiler) goes through :func:`time_interleaved`.

Runners take turns (A B C A B C ...: one timed call of each per round), so slow drift of the
machine (clocks, thermals, background load) hits every variant alike. Warm-up rounds run first,
untimed. Only ``Runner.timed_infer`` is timed; it synchronises device work itself (the CUDA sync
hook: ORT IOBinding sync, CUDA events, TensorRT stream sync), and inputs are staged before by
``Runner.prepare``. The garbage collector is off while timing, so a collection is not charged to
whichever variant happened to run. No full ``gc.collect()`` before: with torch loaded it walks
every tracked object (about 1 s per call on a loaded 2-core machine, paid by every planned block
and every benchmark) and a disabled collector needs no clean slate to stay out of the timings.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Mapping, Sequence

from dsp_deploy.runtime.runner import Runner, make_feed
from dsp_deploy.runtime.stats import Summary, summarize

MAX_BUDGET_ROUNDS = 1_000_000


def time_interleaved(runners: Sequence[Runner], *, runs: int | None = None, warmup: int = 0,
                     time_budget: float | None = None, desc: str = "", progress: bool | None = False,
                     ) -> list[list[float]]:
    """Per runner, the latencies in ms of ``runs`` interleaved rounds (or of the rounds that fit
    in ``time_budget`` seconds), after ``warmup`` untimed rounds. Runners must be active and
    prepared."""
    from tqdm import tqdm

    for _ in range(warmup):
        for runner in runners:
            runner.timed_infer()
    samples: list[list[float]] = [[] for _ in runners]
    if not runners:
        return samples
    deadline = time.perf_counter() + time_budget if time_budget is not None else None
    total = runs if runs is not None else MAX_BUDGET_ROUNDS
    gc_was_enabled = gc.isenabled()
    gc.collect(0)  # the youngest generation only: cheap, frees what the warm-up left
    gc.disable()
    try:
        with tqdm(total=runs, desc=desc, unit="round", leave=False,
                  disable=None if progress is None else not progress) as bar:
            for _ in range(total):
                for i, runner in enumerate(runners):
                    samples[i].append(runner.timed_infer() / 1e6)
                bar.update(1)
                if deadline is not None and time.perf_counter() >= deadline:
                    break
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def time_runners(runners: Mapping[str, Runner], batches: Sequence[int], *, runs: int, warmup: int = 3,
                 input_shape: Sequence[int] | None = None, seed: int = 0) -> dict[str, dict[int, Summary]]:
    """Name -> batch -> summary of ``runs`` interleaved timings: activates the runners (those it
    activated are deactivated again), feeds random inputs of each batch (same seed -> same data)."""
    started = [r for r in runners.values() if not r.is_active]
    result: dict[str, dict[int, Summary]] = {name: {} for name in runners}
    try:
        for runner in started:
            runner.activate()
        for batch in batches:
            for runner in runners.values():
                runner.prepare(make_feed(runner.input_specs(), batch, input_shape, seed=seed + batch,
                                         where=runner.name))
            for name, samples in zip(runners, time_interleaved(list(runners.values()), runs=runs, warmup=warmup)):
                result[name][batch] = summarize(samples)
    finally:
        for runner in started:
            runner.deactivate()
    return result
