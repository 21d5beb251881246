"""The measured-latency matcher's search, on hand-made latency functions (no timing involved)."""
from __future__ import annotations

import pytest

from dsp_deploy.compare.latency_match import (
    LatencyTarget,
    Measurement,
    latency_targeted,
    match_ratio,
    register_latency_targeted,
)
from dsp_deploy.errors import UsageError

DENSE = {1: 2.0, 32: 40.0}


def curve(ratio: float) -> Measurement:
    """Latency that falls slower than FLOPs (fixed overhead + a convex part), per batch."""
    frac = 0.25 + 0.75 * (1 - ratio) ** 1.3
    return Measurement(ratio, {b: ms * frac for b, ms in DENSE.items()}, dict(DENSE), flops=int(1e6 * (1 - ratio)))


@pytest.mark.parametrize("speedup", [1.5, 2.0, 3.0])
def test_converges_within_tolerance(speedup: float) -> None:
    result = match_ratio(curve, LatencyTarget(speedup=speedup, batch=32))
    assert result.converged, result.steps
    assert abs(result.best.error(result.target)) <= 0.05
    assert abs(result.best.speedup(32) - speedup) / speedup < 0.06
    assert len(result.steps) <= 6


def test_absolute_target_and_flops_reported() -> None:
    result = match_ratio(curve, LatencyTarget(ms=1.0, batch=1, tolerance=0.02))
    assert result.converged and abs(result.best.latency_ms[1] - 1.0) <= 0.02
    assert 0 < result.best.flops < 1e6


def test_unreachable_target_returns_best_with_reason() -> None:
    result = match_ratio(curve, LatencyTarget(speedup=10.0, batch=32))  # the curve floors at 4x
    assert not result.converged
    assert "out of reach" in result.reason
    assert result.best.ratio == pytest.approx(0.95)


def test_noisy_measurements_still_bracket() -> None:
    noise = iter([0.03, -0.04, 0.02, -0.01, 0.04, -0.03, 0.0, 0.01] * 2)

    def noisy(ratio: float) -> Measurement:
        m = curve(ratio)
        return Measurement(ratio, {b: v * (1 + next(noise)) for b, v in m.latency_ms.items()}, m.dense_ms)

    result = match_ratio(noisy, LatencyTarget(speedup=2.0, batch=32))
    assert result.converged


def test_bad_targets() -> None:
    with pytest.raises(UsageError):
        LatencyTarget()
    with pytest.raises(UsageError):
        LatencyTarget(speedup=2.0, ms=1.0)
    with pytest.raises(UsageError):
        match_ratio(curve, LatencyTarget(speedup=2.0), bounds=(0.5, 0.2))


def test_latency_targeted_hook() -> None:
    fn, reason = latency_targeted("test-latency-method")
    assert fn is None and "'test-latency-method'" in reason and "register_latency_targeted" in reason
    register_latency_targeted("test-latency-method", lambda source, target: source)
    fn, reason = latency_targeted("test-latency-method")
    assert fn is not None and reason == ""


def test_ratio_out_of_reach_searches_below_it() -> None:
    from dsp_deploy.compare.latency_match import RatioOutOfReach

    def limited(ratio: float) -> Measurement:
        if ratio > 0.7:  # e.g. inner-channel pruning cannot remove more
            raise RatioOutOfReach("cannot reach")
        return curve(ratio)

    result = match_ratio(limited, LatencyTarget(speedup=3.0, batch=32), start=0.9)
    assert result.best.ratio <= 0.7 and any(s["error_pct"] != s["error_pct"] for s in result.steps)
    assert not result.converged or abs(result.best.error(result.target)) <= 0.05


def kinked(ratio: float) -> Measurement:
    """What DSP's exported models do (recorded in the accuracy-latency run): barely faster than dense
    until the planner's grouped lowerings pay, then a steep power of the kept FLOPs."""
    frac = 1 / (1 + 0.05 * min(ratio, 0.72))
    if ratio > 0.72:
        frac *= ((1 - ratio) / 0.28) ** 0.9
    return Measurement(ratio, {b: ms * frac for b, ms in DENSE.items()}, dict(DENSE))


@pytest.mark.parametrize("speedup", [1.5, 2.0, 3.0])
def test_kinked_curve_converges(speedup: float) -> None:
    # interpolating in the kept fraction (and halving a stuck end) converges where a secant in the
    # ratio did not: at 2x the ratio secant was still 5.4% slow / 21.7% fast after six measurements
    result = match_ratio(kinked, LatencyTarget(speedup=speedup, batch=32), max_steps=6)
    assert result.converged, result.steps


def test_priors_from_earlier_budgets_bracket_the_search() -> None:
    prior: list[tuple[float, float]] = []
    steps = {}
    for speedup in (1.25, 1.5, 2.0, 3.0):
        target = LatencyTarget(speedup=speedup, batch=32)
        alone = match_ratio(kinked, target, max_steps=6)
        result = match_ratio(kinked, target, max_steps=6, prior=prior)
        assert result.converged, result.steps
        steps[speedup] = (len(result.steps), len(alone.steps))
        prior += [(s["ratio"], speedup / (1 + s["error_pct"] / 100)) for s in result.steps]
    assert steps[1.25][0] == steps[1.25][1]  # nothing known yet
    for speedup in (1.5, 2.0, 3.0):
        assert steps[speedup][0] <= 2 < steps[speedup][1], steps


def test_prior_within_tolerance_is_measured_first_and_absolute_targets_ignore_priors() -> None:
    seen: list[float] = []

    def measure(ratio: float) -> Measurement:
        seen.append(ratio)
        return kinked(ratio)

    point = kinked(0.83)
    target = LatencyTarget(speedup=point.speedup(32), batch=32)
    result = match_ratio(measure, target, prior=[(0.5, 1.02), (0.83, point.speedup(32))])
    assert seen == [0.83] and result.converged and result.steps[0]["ratio"] == 0.83
    seen.clear()
    match_ratio(measure, LatencyTarget(ms=point.latency_ms[32], batch=32), start=0.3, prior=[(0.83, 9.0)])
    assert seen[0] == 0.3  # a prior speedup says nothing about an absolute latency


def test_onnx_measurer_reads_its_statistic_over_its_window(monkeypatch, tmp_path) -> None:
    """``stat="min"`` takes each timing's minimum (the full accuracy-latency run's), the default its median;
    ``min_seconds`` reaches the timing loop."""
    from pathlib import Path

    import dsp_deploy.bench as bench
    from dsp_deploy.bench.results import ResultRow
    from dsp_deploy.compare.latency_match import OnnxMeasurer

    seen = []

    def timed(variants, backends, batches, **kw):
        seen.append(kw["min_seconds"])
        return [ResultRow(variant=v.name, path=str(v.path), backend="ort-cpu", batch=b, median_ms=2.0 * (i + 1),
                          min_ms=1.0 * (i + 1)) for b in batches for i, v in enumerate(variants)]

    monkeypatch.setattr(bench, "run_benchmark", timed)
    files = (Path(tmp_path / "dense.onnx"), Path(tmp_path / "candidate.onnx"))
    by_min = OnnxMeasurer(files[0], tmp_path, (1, 32), stat="min", min_seconds=3.0).time_files(files[1])
    by_median = OnnxMeasurer(files[0], tmp_path, (1, 32)).time_files(files[1])
    assert by_min == ({1: 2.0, 32: 2.0}, {1: 1.0, 32: 1.0})
    assert by_median == ({1: 4.0, 32: 4.0}, {1: 2.0, 32: 2.0})
    assert seen == [3.0, 0.0]
    with pytest.raises(UsageError, match="the measurer's statistic must be one of median, min, not 'mn'"):
        OnnxMeasurer(files[0], tmp_path, (1, 32), stat="mn")  # not silently the median
