"""The root search both measured-latency loops share: which pruning ratio to measure next.

A pruned model's latency falls as its FLOPs-reduction ratio grows, roughly as a power of the kept
fraction, with steps where the exporter switches a block's lowering. `RatioBracket` holds every
measured (ratio, log(latency / goal)) and the latest point on either side of the goal, and proposes
the next ratio: inside a bracket, log latency interpolated linearly in the log of the kept fraction,
an end that stays put twice weighing half as much (Illinois), the midpoint where that lands near an
end; before one, a one-sided step (a power-law extrapolation, at most the bisection step; from a
single point, the caller's assumed exponent or the bisection step). Used by
``compare.latency_match`` (ratio-matched methods) and ``training.latency_prune`` (the measured
corrections of latency-targeted pruning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class RatioBracket:
    """What a search knows: every measured (ratio, log(latency / goal)), the latest point on either
    side of the goal (``below`` still too slow, ``above`` already too fast) and how often each of
    those ends stayed put (``kept``)."""

    one_point_exponent: float | None = None  # the power law assumed while a side has one point (None: bisect)
    points: list[tuple[float, float]] = field(default_factory=list)
    below: tuple[float, float] | None = None
    above: tuple[float, float] | None = None
    kept: dict[str, int] = field(default_factory=lambda: {"below": 0, "above": 0})

    def add(self, ratio: float, logerr: float) -> None:
        self.points.append((ratio, logerr))
        side, other = ("below", "above") if logerr > 0 else ("above", "below")
        setattr(self, side, (ratio, logerr))
        self.kept[side] = 0
        if getattr(self, other) is not None:
            self.kept[other] += 1

    def next_ratio(self, lo: float, hi: float) -> float | None:
        """Next ratio to try within [lo, hi]; None when the bracket is exhausted (e.g. the goal lies
        past a bound)."""
        below, above = self.below, self.above
        if below is not None and above is not None:
            (r0, e0), (r1, e1) = below, above
            if abs(r1 - r0) < 1e-4:
                return None
            e0 /= 2 ** max(0, self.kept["below"] - 1)  # Illinois: an end that stays put weighs less
            e1 /= 2 ** max(0, self.kept["above"] - 1)
            x0, x1 = log_kept(r0), log_kept(r1)
            x = x0 + (x1 - x0) * e0 / (e0 - e1) if e0 != e1 else (x0 + x1) / 2
            guess = 1.0 - math.exp(x)
            span = abs(r1 - r0)
            if not min(r0, r1) + 0.1 * span <= guess <= max(r0, r1) - 0.1 * span:
                guess = (r0 + r1) / 2
            return guess
        if below is not None:  # everything so far too slow: prune more (at most the bisection step)
            if below[0] >= hi - 1e-9:
                return None
            step = below[0] + max(0.1, (hi - below[0]) / 2)
            guess = self._extrapolate(below, slow=True)
            return min(hi, step, step if guess is None else guess)
        if above is None:
            return None  # nothing measured yet: the caller picks the first ratio
        if above[0] <= lo + 1e-9:  # everything so far too fast: prune less
            return None
        step = above[0] - max(0.1, (above[0] - lo) / 2)
        guess = self._extrapolate(above, slow=False)
        return max(lo, step, step if guess is None else guess)

    def _extrapolate(self, end: tuple[float, float], *, slow: bool) -> float | None:
        """Where the power law through ``end`` and the nearest other point on its side crosses the
        goal (exponent clamped to [0.3, 3]); with no other point on that side, the power law of
        ``one_point_exponent`` through ``end`` (None without one)."""
        side = [p for p in self.points if (p[1] > 0) == slow and p[0] != end[0]]
        if side:
            other = max(side) if slow else min(side)
            dx = log_kept(end[0]) - log_kept(other[0])
            exponent = min(3.0, max(0.3, (end[1] - other[1]) / dx))
        elif self.one_point_exponent is not None:
            exponent = self.one_point_exponent
        else:
            return None
        return 1.0 - math.exp(log_kept(end[0]) - end[1] / exponent)


def log_kept(ratio: float) -> float:
    """log of the kept fraction: latency is roughly a power of it."""
    return math.log1p(-ratio)
