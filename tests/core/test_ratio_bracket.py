"""The shared next-ratio rule of the measured-latency searches (`RatioBracket`)."""
from __future__ import annotations

import math

import pytest

from dsp_deploy.utils.ratio_bracket import RatioBracket


def test_one_point_steps_by_the_assumed_power_law_capped_by_bisection() -> None:
    fast = RatioBracket(one_point_exponent=1.0)
    fast.add(0.85, math.log(0.7))  # ran at 70% of the goal latency: keep 1/0.7 as many FLOPs
    assert fast.next_ratio(0.0, 0.9) == pytest.approx(1 - 0.15 / 0.7)
    slow = RatioBracket(one_point_exponent=1.0)
    slow.add(0.5, math.log(1.25))  # 25% too slow: keep 1/1.25 as many FLOPs
    assert slow.next_ratio(0.0, 0.9) == pytest.approx(1 - 0.5 / 1.25)
    far = RatioBracket(one_point_exponent=1.0)
    far.add(0.2, math.log(4.0))  # the power law would prune to 80%; the bisection step stops at 55%
    assert far.next_ratio(0.0, 0.9) == pytest.approx(0.55)
    plain = RatioBracket()  # no assumed law: the bisection step
    plain.add(0.85, math.log(0.7))
    assert plain.next_ratio(0.0, 0.9) == pytest.approx(0.425)


def test_bracket_interpolates_in_log_kept_and_ends_at_a_bound() -> None:
    bracket = RatioBracket()
    bracket.add(0.5, math.log(1.2))  # too slow
    bracket.add(0.8, math.log(0.8))  # too fast
    x0, x1 = math.log(0.5), math.log(0.2)
    expected = 1 - math.exp(x0 + (x1 - x0) * math.log(1.2) / (math.log(1.2) - math.log(0.8)))
    assert bracket.next_ratio(0.0, 0.9) == pytest.approx(expected)
    top = RatioBracket()
    top.add(0.9, math.log(1.1))  # too slow at the deepest allowed ratio: nothing left to try
    assert top.next_ratio(0.0, 0.9) is None
    assert RatioBracket().next_ratio(0.0, 0.9) is None
