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
