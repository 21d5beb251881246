"""The one target search of pruning: bisection for the smallest pruning amount that fits a target.

Every pruner has one knob that prunes monotonically more as it grows: DSP's global threshold
beta (a float in [0, 1]), a channel pruner's number of removed channels (an integer). Whatever
the target (a FLOPs reduction, a latency budget), the search is the same: the smallest knob
value whose evaluation ``fits``. `bisect_threshold` is that search; the pruners supply the
evaluation (structure + cost), the fit test and, for FLOPs targets, a callback that tracks the
closest probe and an early stop.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def bisect_threshold(evaluate: Callable[[float], T], fits: Callable[[T], bool], lo: float, hi: float, *,
                     integer: bool = False, iterations: int | None = None, resolution: float = 0.0,
                     stop: Callable[[T], bool] | None = None,
                     on_probe: Callable[[float, T], None] | None = None) -> tuple[float, T | None]:
    """Smallest knob in ``[lo, hi]`` whose ``evaluate`` result ``fits`` (``fits`` must turn from
    false to true once as the knob grows; ``hi`` is assumed to fit and is not evaluated).

    ``integer``: the knob is an integer (exact search, ``lo`` moves past a misfit); otherwise a
    float (``lo`` moves onto it) searched for at most ``iterations`` probes or until
    ``hi - lo < resolution``. ``stop(result)`` ends the search early (the probe still updates the
    bounds); ``on_probe(knob, result)`` sees every probe. Returns (smallest fitting knob found,
    its result, or None when no probe fitted)."""
    best: T | None = None
    probes = 0
    while (lo < hi) if integer else (iterations is None or probes < iterations):
        mid: float = (int(lo) + int(hi)) // 2 if integer else (lo + hi) / 2
        result = evaluate(mid)
        probes += 1
        if on_probe is not None:
            on_probe(mid, result)
        if fits(result):
            hi, best = mid, result
        else:
            lo = mid + 1 if integer else mid
        if (stop is not None and stop(result)) or (not integer and hi - lo < resolution):
            break
        if integer and iterations is not None and probes >= iterations:
            break
    return hi, best
