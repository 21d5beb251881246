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

``min_seconds`` stretches the loop past ``runs`` rounds until that much time has passed. On shared
hosts a burst of contention lasting about a second slows memory-bound variants (Gathers) far more
than dense ones, so interleaving does not cancel it: 30 rounds of a small model (0.5 s) can fall
wholly inside a burst and move the median ratio by 20%; a median over several seconds cannot.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Mapping, Sequence

from dsp_deploy.errors import UsageError
from dsp_deploy.runtime.runner import Runner, make_feed
from dsp_deploy.runtime.stats import Summary, summarize

MAX_BUDGET_ROUNDS = 1_000_000
MEASURE_SECONDS = 3.0
"""``min_seconds`` of the timings that decide something (a latency-targeted try, a matched model):
on the 2-core EPYC host a ResNet-20 export measured 1.91-2.04x of dense over ten 3 s windows where
ten 0.5 s windows (30 rounds) gave 1.58-2.06x. Contention lasting minutes moves even those (`STATS`)."""
STATS = ("median", "min")
"""What a decision reads off a timing. Contention on a shared host only ever adds time, and it can
last minutes: the same ResNet-20 export's median ratio to dense gave 1.55-2.03x over ten 3 s windows
in one minute while its minimum ratio gave 2.00-2.07x. The minimum estimates the uncontended
latency (Chen & Revels, "Robust benchmarking in noisy environments", 2016); the median is what a
loaded machine delivers."""


def check_stat(stat: str, setting: str) -> str:
    """``stat`` if it is one of `STATS`, else a UsageError naming the ``setting`` it was given as (a
    misspelt statistic must not fall back to the median silently)."""
    if stat not in STATS:
        raise UsageError(f"{setting} must be one of {', '.join(STATS)}, not '{stat}'")
    return stat


def time_interleaved(runners: Sequence[Runner], *, runs: int | None = None, warmup: int = 0,
                     time_budget: float | None = None, min_seconds: float = 0.0, desc: str = "",
                     progress: bool | None = False) -> list[list[float]]:
    """Per runner, the latencies in ms of ``runs`` interleaved rounds (or of the rounds that fit
    in ``time_budget`` seconds; with ``min_seconds``, at least ``runs`` rounds and as many more as
    that many seconds take), after ``warmup`` untimed rounds. Runners must be active and prepared."""
    from tqdm import tqdm

    for _ in range(warmup):
        for runner in runners:
            runner.timed_infer()
    samples: list[list[float]] = [[] for _ in runners]
    if not runners:
        return samples
    start = time.perf_counter()
    deadline = start + time_budget if time_budget is not None else None
    stretch = start + min_seconds if min_seconds > 0 else None
    total = runs if runs is not None and stretch is None else MAX_BUDGET_ROUNDS
    gc_was_enabled = gc.isenabled()
    gc.collect(0)  # the youngest generation only: cheap, frees what the warm-up left
    gc.disable()
    try:
        with tqdm(total=runs, desc=desc, unit="round", leave=False,
                  disable=None if progress is None else not progress) as bar:
            for done in range(1, total + 1):
                for i, runner in enumerate(runners):
                    samples[i].append(runner.timed_infer() / 1e6)
                bar.update(1)
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    break
                if stretch is not None and now >= stretch and (runs is None or done >= runs):
                    break
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def time_runners(runners: Mapping[str, Runner], batches: Sequence[int], *, runs: int, warmup: int = 3,
                 input_shape: Sequence[int] | None = None, seed: int = 0, min_seconds: float = 0.0,
                 ) -> dict[str, dict[int, Summary]]:
    """Name -> batch -> summary of ``runs`` interleaved timings (stretched to ``min_seconds``):
    activates the runners (those it activated are deactivated again), feeds random inputs of each
    batch (same seed -> same data)."""
    started = [r for r in runners.values() if not r.is_active]
    result: dict[str, dict[int, Summary]] = {name: {} for name in runners}
    try:
        for runner in started:
            runner.activate()
        for batch in batches:
            for runner in runners.values():
                runner.prepare(make_feed(runner.input_specs(), batch, input_shape, seed=seed + batch,
                                         where=runner.name))
            samples = time_interleaved(list(runners.values()), runs=runs, warmup=warmup, min_seconds=min_seconds)
            for name, times in zip(runners, samples):
                result[name][batch] = summarize(times)
    finally:
        for runner in started:
            runner.deactivate()
    return result
