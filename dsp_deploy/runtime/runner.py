"""The one runner interface every backend implements (bench, compare, planner, serving), plus input-feed helpers.

A runner is created cheaply, loads its model in ``activate()`` (sessions, engines, device
memory) and frees it in ``deactivate()``. Timing is split from data movement: ``prepare(feed)``
stages inputs (host->device copies, bindings) untimed, then ``timed_infer()`` returns the
nanoseconds of the compute alone, so many timed calls can run on one prepared feed.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import BenchError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    """One model input: name, shape (``None`` or a string for a dynamic dim) and numpy dtype name."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str = "float32"


class Runner:
    """Base class: subclasses implement ``_activate``, ``_deactivate``, ``input_specs``, ``infer``,
    and ``_stage`` / ``_run_staged`` (or override ``timed_infer`` for device-side timing)."""

    device: str = "cpu"
    timing: str = "perf_counter"

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_active = False
        self._staged: Any = None

    # -- lifetime ---------------------------------------------------------------------------
    def activate(self) -> None:
        """Load the model; raises ``BackendUnavailable`` when the runtime is missing."""
        if self.is_active:
            return
        self._activate()
        self.is_active = True

    def deactivate(self) -> None:
        """Free sessions and memory; safe to call twice."""
        if not self.is_active:
            return
        try:
            self._deactivate()
        finally:
            self._staged = None
            self.is_active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        """Default: nothing to free."""

    # -- inference --------------------------------------------------------------------------
    def input_specs(self) -> list[InputSpec]:
        """The model's inputs (valid after ``activate()``)."""
        raise NotImplementedError

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on host arrays and return host arrays (for checks, not for timing)."""
        raise NotImplementedError

    def prepare(self, feed: Mapping[str, np.ndarray]) -> None:
        """Stage ``feed`` for ``timed_infer`` (untimed: copies, bindings, graph capture)."""
        self._require_active("prepare")
        self._staged = self._stage(feed)

    def timed_infer(self) -> int:
        """Run the staged feed once; return the compute time in nanoseconds."""
        self._require_active("timed_infer")
        if self._staged is None:
            raise BenchError(f"runner '{self.name}': prepare(feed) must be called before timed_infer()")
        start = time.perf_counter_ns()
        self._run_staged(self._staged)
        return time.perf_counter_ns() - start

    def _stage(self, feed: Mapping[str, np.ndarray]) -> Any:
        return dict(feed)

    def _run_staged(self, staged: Any) -> None:
        self.infer(staged)

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise BenchError(f"runner '{self.name}': activate() before {what}()")


_FLOAT_DTYPES = ("float32", "float16", "float64")


def resolve_shape(
    spec: InputSpec,
    batch: int,
    input_shape: Sequence[int] | None = None,
    *,
    where: str = "",
) -> tuple[int, ...]:
    """The concrete shape for ``spec`` at ``batch``; raises ``BenchError`` when the model's fixed
    batch dim differs or a non-batch dim is dynamic and no ``input_shape`` (C,H,W...) is given."""
    prefix = f"{where}: " if where else ""
    if not spec.shape:
        raise BenchError(f"{prefix}input '{spec.name}' is a scalar; it has no batch dimension")
    first = spec.shape[0]
    if isinstance(first, int) and first > 0 and first != batch:
        raise BenchError(
            f"{prefix}input '{spec.name}' has a fixed batch size of {first}; batch {batch} is not allowed "
            "(re-export with a dynamic batch dimension)"
        )
    rest = spec.shape[1:]
    if input_shape is not None:
        if len(input_shape) != len(rest):
            raise BenchError(
                f"{prefix}--input-shape {'x'.join(map(str, input_shape))} has {len(input_shape)} dims; "
                f"input '{spec.name}' needs {len(rest)} after the batch dim"
            )
        for dim, given in zip(rest, input_shape):
            if isinstance(dim, int) and dim > 0 and dim != given:
                raise BenchError(
                    f"{prefix}--input-shape {'x'.join(map(str, input_shape))} does not match input "
                    f"'{spec.name}' shape {list(spec.shape)}"
                )
        return (batch, *(int(d) for d in input_shape))
    if any(not (isinstance(d, int) and d > 0) for d in rest):
        raise BenchError(
            f"{prefix}input '{spec.name}' has dynamic dims {list(spec.shape)}; pass --input-shape CxHxW"
        )
    return (batch, *(int(d) for d in rest))


def make_feed(
    specs: Sequence[InputSpec],
    batch: int,
    input_shape: Sequence[int] | None = None,
    *,
    seed: int = 0,
    where: str = "",
) -> dict[str, np.ndarray]:
    """Random inputs of each spec's dtype with the batch dim set to ``batch`` (same seed -> same data)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = resolve_shape(spec, batch, input_shape if len(specs) == 1 else None, where=where)
        if spec.dtype in _FLOAT_DTYPES:
            feed[spec.name] = rng.standard_normal(shape, dtype=np.float32).astype(spec.dtype)
        elif spec.dtype == "bool":
            feed[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            try:
                dtype = np.dtype(spec.dtype)
            except TypeError as exc:
                raise BenchError(
                    f"{where + ': ' if where else ''}input '{spec.name}' has unsupported dtype {spec.dtype}"
                ) from exc
            feed[spec.name] = rng.integers(0, 8, shape).astype(dtype)
    return feed
