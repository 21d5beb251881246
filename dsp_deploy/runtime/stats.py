"""Latency statistics: percentiles by linear interpolation between order statistics.

Same definition as numpy's default (``method="linear"``): the q-th percentile of n sorted
samples sits at fractional rank ``(n - 1) * q / 100``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dsp_deploy.errors import BenchError


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples`` (need not be sorted)."""
    if not samples:
        raise BenchError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise BenchError(f"percentile {q} is outside 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    frac = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


@dataclass(frozen=True)
class Summary:
    """Summary of one variant/backend/batch's timed runs, in milliseconds."""

    runs: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float


def summarize(samples_ms: Sequence[float]) -> Summary:
    """Median / p90 / p99 / mean / min / max / (population) std of latencies in ms."""
    if not samples_ms:
        raise BenchError("no timed runs to summarize")
    n = len(samples_ms)
    mean = math.fsum(samples_ms) / n
    var = math.fsum((s - mean) ** 2 for s in samples_ms) / n
    return Summary(
        runs=n,
        median_ms=percentile(samples_ms, 50.0),
        p90_ms=percentile(samples_ms, 90.0),
        p99_ms=percentile(samples_ms, 99.0),
        mean_ms=mean,
        min_ms=min(samples_ms),
        max_ms=max(samples_ms),
        std_ms=math.sqrt(var),
    )
