"""Measured-latency matching, for any pruning method: bisect the FLOPs-reduction ratio a method prunes to
until the exported model's measured latency is within a tolerance (5%) of a target, timed side by
side with the dense model in one process (ONNX Runtime CPU through the bench harness).

The target is a latency in ms or a speedup over dense at one batch size; every step records the
latency at every batch timed, so a caller reports batch 1 and 32 while matching on one of them.

Layers: ``match_ratio`` is the pure search over a ``measure(ratio) -> Measurement`` callable (tests give
it a hand-made latency function); ``OnnxMeasurer`` exports a candidate (``export_onnx`` or a caller's
exporter) and times it against the dense ONNX with ``run_benchmark``; ``match_latency`` joins a
method's ``prune(ratio)`` to both.

Hook for latency-targeted pruning (issue 11's ``--speedup``/``--latency-target``): such a method does
not prune to a ratio but straight to a latency. It plugs in with ``register_latency_targeted(name,
fn)``; ``latency_targeted(name)`` gives the pruner or the reason it is missing, and callers list the
method as skipped with that reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.utils.ratio_bracket import RatioBracket

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.05
DEFAULT_MAX_STEPS = 8
RATIO_BOUNDS = (0.0, 0.95)


class RatioOutOfReach(Exception):
    """Raised by a ``measure``/``prune`` callable when the method cannot prune to that ratio at all."""


@dataclass(frozen=True)
class LatencyTarget:
    """Match to ``speedup`` x faster than dense, or to ``ms`` absolute, at ``batch`` (one of them)."""

    speedup: float | None = None
    ms: float | None = None
    batch: int = 32
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if (self.speedup is None) == (self.ms is None):
            raise UsageError("a latency target needs exactly one of a speedup or a latency in ms")
        if self.speedup is not None and not self.speedup > 0:
            raise UsageError(f"speedup must be > 0, got {self.speedup}")
        if self.ms is not None and not self.ms > 0:
            raise UsageError(f"latency target must be > 0 ms, got {self.ms}")
        if not 0 < self.tolerance < 0.5:
            raise UsageError(f"latency tolerance must be in (0, 0.5), got {self.tolerance}")

    def target_ms(self, dense_ms: float) -> float:
        """The latency to reach, given the dense latency measured in the same run."""
        return self.ms if self.ms is not None else dense_ms / float(self.speedup)  # type: ignore[arg-type]

    def label(self) -> str:
        return f"{self.speedup:g}x faster than dense" if self.speedup is not None else f"{self.ms:g} ms"


@dataclass
class Measurement:
    """One candidate: its ratio, costs and median latency per batch, with dense's from the same run."""

    ratio: float
    latency_ms: dict[int, float]
    dense_ms: dict[int, float]
    flops: int = 0
    params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def error(self, target: LatencyTarget) -> float:
        """(measured - target) / target at the target's batch (> 0: too slow)."""
        goal = target.target_ms(self.dense_ms[target.batch])
        return (self.latency_ms[target.batch] - goal) / goal

    def speedup(self, batch: int) -> float:
        return self.dense_ms[batch] / self.latency_ms[batch]


@dataclass
class MatchResult:
    """The search's outcome: the best point (closest to the target), whether it is within tolerance,
    and every step (ratio, error) taken."""

    target: LatencyTarget
    best: Measurement
    converged: bool
    steps: list[dict[str, float]]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        best = asdict(self.best)
        best.pop("extra", None)
        return {
            "target": asdict(self.target),
            "best": best,
            "converged": self.converged,
            "error_pct": round(100 * self.best.error(self.target), 2),
            "steps": self.steps,
            "reason": self.reason,
        }


def match_ratio(
    measure: Callable[[float], Measurement],
    target: LatencyTarget,
    *,
    start: float | None = None,
    bounds: tuple[float, float] = RATIO_BOUNDS,
    max_steps: int = DEFAULT_MAX_STEPS,
    prior: Sequence[tuple[float, float]] = (),
) -> MatchResult:
    """Search the pruning ratio whose measured latency is within ``target.tolerance`` of the target.

    Latency is taken to fall as the ratio grows (more pruned, faster). Each step interpolates
    log-latency linearly in the log of the kept fraction between the bracketing points (latency
    roughly a power of the kept FLOPs), halving the weight of an end that stays put twice
    (Illinois), and falls back to the midpoint when that lands near a bracket end; noisy
    measurements only shrink the bracket. ``prior``: (ratio, speedup at the target's batch) pairs
    measured earlier on the same latency curve (the same source model matched to another budget):
    they bracket the first guess (a prior within tolerance is re-measured first) and are not
    results themselves. Stops at the first point within tolerance or after ``max_steps``
    measurements; the best point is returned either way (``converged`` says which).
    """
    lo, hi = bounds
    if not 0.0 <= lo < hi < 1.0:
        raise UsageError(f"ratio bounds must satisfy 0 <= lo < hi < 1, got {bounds}")
    if max_steps < 1:
        raise UsageError(f"max_steps must be >= 1, got {max_steps}")
    bracket = RatioBracket()
    guess = _prior_guess(prior, target, bracket, lo, hi)
    if guess is None:
        guess = start if start is not None else (1.0 - 1.0 / target.speedup if target.speedup else (lo + hi) / 2)
    ratio = min(max(guess, lo), hi)
    steps: list[dict[str, float]] = []
    best: Measurement | None = None
    for _ in range(max_steps):
        try:
            point = measure(ratio)
        except RatioOutOfReach as exc:  # the method's own limit: search below it
            log.info("latency match: ratio %.4f out of reach (%s)", ratio, exc)
            steps.append({"ratio": round(ratio, 6), "error_pct": float("nan"), "latency_ms": float("nan")})
            hi = ratio - 0.01
            below, above = bracket.below, bracket.above
            floor = below[0] if below is not None else lo
            if hi <= floor:
                break
            ratio = (floor + hi) / 2 if above is None or above[0] > hi else (floor + above[0]) / 2
            continue
        err = point.error(target)
        steps.append(
            {
                "ratio": round(ratio, 6),
                "error_pct": round(100 * err, 3),
                "latency_ms": round(point.latency_ms[target.batch], 6),
            }
        )
        log.info("latency match %s: ratio %.4f -> %+.1f%% vs target", target.label(), ratio, 100 * err)
        if best is None or abs(err) < abs(best.error(target)):
            best = point
        if abs(err) <= target.tolerance:
            return MatchResult(target, point, True, steps)
        bracket.add(ratio, math.log1p(err))
        next_ratio = bracket.next_ratio(lo, hi)
        if next_ratio is None:
            break
        ratio = next_ratio
    if best is None:
        raise RatioOutOfReach(f"no ratio in [{lo}, {ratio:.3f}] could be pruned to")
    edge = (bracket.below is not None and bracket.below[0] >= hi - 1e-9) or (
        bracket.above is not None and bracket.above[0] <= lo + 1e-9
    )
    reason = (
        "out of reach within the ratio bounds"
        if edge
        else f"not within {100 * target.tolerance:g}% after {len(steps)} measurements"
    )
    return MatchResult(target, best, False, steps, reason)


def _prior_guess(
    prior: Sequence[tuple[float, float]], target: LatencyTarget, bracket: RatioBracket, lo: float, hi: float
) -> float | None:
    """Fill ``bracket`` from earlier measurements of the same curve; the first ratio to measure, or
    None when they say nothing (no prior, or an absolute target: a speedup prior needs a speedup)."""
    if target.speedup is None:
        return None
    points = sorted(
        (r, math.log(target.speedup / s)) for r, s in prior if lo <= r <= hi and s > 0 and math.isfinite(s)
    )
    if not points:
        return None
    close = min(points, key=lambda p: abs(p[1]))
    if abs(math.expm1(close[1])) <= target.tolerance:
        return close[0]
    fast = [p for p in points if p[1] < 0]
    slow = [p for p in points if p[1] > 0 and (not fast or p[0] < fast[0][0])]
    bracket.points = slow + fast  # the consistent ones: too-slow points less pruned than any too-fast one
    if slow:
        bracket.below = slow[-1]
    if fast:
        bracket.above = fast[0]
    return bracket.next_ratio(lo, hi)


# --- measuring exported candidates side by side with dense ---------------------------------------------------

Exporter = Callable[[Any, Path], None]


def export_checkpoint(
    candidate: Any,
    path: Path,
    *,
    lowering: str = "auto",
    cache_path: str | None = None,
    plan_runs: int = 15,
    plan_batches: Sequence[int] | None = None,
) -> None:
    """Export a dsp-deploy checkpoint with our exporter (no parity check: the matcher only times it)."""
    from dsp_deploy.export import export_onnx

    dense = all(layer.is_dense for layer in candidate.structure.layers)
    export_onnx(
        candidate,
        path,
        lowering="dense" if dense else lowering,
        parity=False,
        cache_path=cache_path,
        runs=plan_runs,
        plan_batches=plan_batches,
    )


@dataclass
class OnnxMeasurer:
    """Times candidates against ``dense_onnx`` in one interleaved ``run_benchmark`` call per candidate
    (ONNX Runtime CPU, ``threads`` intra-op threads, every batch of ``batches``; at least ``runs``
    rounds and ``min_seconds`` per batch); latencies are each timing's ``stat`` ("median" or "min")."""

    dense_onnx: Path
    folder: Path
    batches: tuple[int, ...] = (1, 32)
    threads: int = 1
    runs: int = 20
    warmup: int = 3
    exporter: Exporter = export_checkpoint
    min_seconds: float = 0.0
    stat: str = "median"
    _count: int = 0

    def __post_init__(self) -> None:
        from dsp_deploy.runtime.timing import check_stat

        check_stat(self.stat, "the measurer's statistic")

    def time_files(self, onnx: Path) -> tuple[dict[int, float], dict[int, float]]:
        """(candidate ms per batch, dense ms per batch), interleaved, each the timing's ``stat``."""
        from dsp_deploy.bench import run_benchmark
        from dsp_deploy.bench.variants import Variant

        rows = run_benchmark(
            [Variant("dense", self.dense_onnx, "onnx"), Variant("candidate", onnx, "onnx")],
            ["ort-cpu"],
            list(self.batches),
            threads=self.threads,
            runs=self.runs,
            warmup=self.warmup,
            min_seconds=self.min_seconds,
            progress=False,
        )
        got: dict[str, dict[int, float]] = {"dense": {}, "candidate": {}}
        for row in rows:
            got[row.variant][row.batch] = float(row.min_ms if self.stat == "min" else row.median_ms)
        return got["candidate"], got["dense"]

    def measure(self, candidate: Any, ratio: float, flops: int = 0, params: int = 0) -> Measurement:
        """Export ``candidate`` and time it; the ONNX file is kept as ``extra['onnx']``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._count += 1
        path = self.folder / f"candidate-{self._count}.onnx"
        self.exporter(candidate, path)
        latency, dense = self.time_files(path)
        return Measurement(ratio, latency, dense, flops, params, {"onnx": str(path)})


def costs_of(candidate: Any) -> tuple[int, int]:
    """(whole-model FLOPs, params) of a checkpoint; (0, 0) for anything else."""
    structure = getattr(candidate, "structure", None)
    if structure is None:
        return 0, 0
    from dsp_deploy.structure import count_costs

    costs = count_costs(structure)
    return costs.flops, costs.params


def match_latency(
    prune: Callable[[float], Any],
    measurer: OnnxMeasurer,
    target: LatencyTarget,
    *,
    costs: Callable[[Any], tuple[int, int]] = costs_of,
    start: float | None = None,
    bounds: tuple[float, float] = RATIO_BOUNDS,
    max_steps: int = DEFAULT_MAX_STEPS,
    prior: Sequence[tuple[float, float]] = (),
) -> tuple[MatchResult, Any]:
    """Prune with ``prune(ratio)`` (any method) until the measured latency matches ``target``;
    returns the search result and the pruned candidate of the best point (``prior``: see match_ratio)."""
    candidates: dict[float, Any] = {}

    def measure(ratio: float) -> Measurement:
        from dsp_deploy.errors import TrainingError

        try:
            candidate = prune(ratio)
        except TrainingError as exc:  # e.g. "channel pruning cannot reach N MMACs"
            raise RatioOutOfReach(str(exc)) from None
        candidates[ratio] = candidate
        flops, params = costs(candidate)
        return measurer.measure(candidate, ratio, flops, params)

    result = match_ratio(measure, target, start=start, bounds=bounds, max_steps=max_steps, prior=prior)
    return result, candidates[result.best.ratio]


# --- latency-targeted pruners (issue 11) plug in here ---------------------------------------------------------

LatencyTargetedPruner = Callable[..., Any]
"""``fn(source_checkpoint, target: LatencyTarget, **options) -> Checkpoint``: prunes straight to a latency."""

_LATENCY_TARGETED: dict[str, LatencyTargetedPruner] = {}
MISSING_REASON = (
    "no latency-targeted pruner is registered as '{name}' (`prune --speedup` runs on its own; methods plug "
    "into the accuracy-latency run via dsp_deploy.compare.latency_match.register_latency_targeted)"
)


def register_latency_targeted(name: str, fn: LatencyTargetedPruner) -> None:
    """Make ``name`` (e.g. "dsp-latency") a method that prunes straight to a latency target."""
    _LATENCY_TARGETED[name] = fn


def latency_targeted(name: str) -> tuple[LatencyTargetedPruner | None, str]:
    """(pruner, "") when ``name`` is registered, else (None, why it is missing)."""
    fn = _LATENCY_TARGETED.get(name)
    return (fn, "") if fn is not None else (None, MISSING_REASON.format(name=name))
