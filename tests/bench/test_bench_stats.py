"""Percentile and summary math on known samples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dsp_deploy.errors import BenchError
from dsp_deploy.runtime.stats import percentile, summarize


def test_percentiles_of_one_to_ten() -> None:
    samples = [float(x) for x in range(10, 0, -1)]  # unsorted on purpose
    assert percentile(samples, 50) == pytest.approx(5.5)
    assert percentile(samples, 90) == pytest.approx(9.1)
    assert percentile(samples, 99) == pytest.approx(9.91)
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 10.0


def test_percentile_matches_numpy_linear() -> None:
    rng = np.random.default_rng(3)
    samples = rng.exponential(2.0, size=37).tolist()
    for q in (1, 25, 50, 90, 99, 99.9):
        assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)), rel=1e-12)


def test_summary_fields() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s.runs == 4
    assert s.median_ms == pytest.approx(2.5)
    assert s.mean_ms == pytest.approx(2.5)
    assert (s.min_ms, s.max_ms) == (1.0, 4.0)
    assert s.std_ms == pytest.approx(math.sqrt(1.25))
    assert s.p90_ms == pytest.approx(3.7)
    single = summarize([7.0])
    assert single.median_ms == single.p99_ms == single.min_ms == 7.0


def test_empty_and_out_of_range() -> None:
    with pytest.raises(BenchError):
        summarize([])
    with pytest.raises(BenchError):
        percentile([1.0], 101)
