"""The one output comparator: run two runners on the same inputs and compare their outputs with
Polygraphy's ``Comparator`` (used by the export parity check, the engine checks and tests).

Our runners (ONNX Runtime, torch, TensorRT; see ``runtime.registry``) are wrapped as Polygraphy
runners, so Polygraphy drives them (activate, infer per feed, deactivate) and its ``simple``
comparison (max absolute error against ``atol``) decides. The tolerance may depend on the
reference output (``atol(reference) -> float``), as the parity check's does.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsp_deploy.runtime.polygraphy import polygraphy_quiet
from dsp_deploy.runtime.runner import Runner

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Comparison:
    """Per feed: max |candidate - reference| over all outputs, the tolerance used, and whether it held."""

    max_abs: list[float]
    atol: list[float]
    passed: list[bool]
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]]  # (reference, candidate) first-output shapes

    def __bool__(self) -> bool:
        return all(self.passed)


def _polygraphy_runner(runner: Runner) -> Any:
    """``runner`` behind Polygraphy's ``BaseRunner`` interface."""
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata

    class Wrapped(BaseRunner):
        def __init__(self) -> None:
            super().__init__(name=runner.name, prefix="dsp-deploy")

        def activate_impl(self) -> None:
            runner.activate()

        def get_input_metadata_impl(self) -> Any:
            import numpy as np

            meta = TensorMetadata()
            for spec in runner.input_specs():
                meta.add(spec.name, dtype=np.dtype(spec.dtype),
                         shape=tuple(d if isinstance(d, int) and d > 0 else -1 for d in spec.shape))
            return meta

        def infer_impl(self, feed_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            start = time.perf_counter()  # Polygraphy reports it; timing proper is runtime.timing's job
            outputs = dict(runner.infer(feed_dict))
            self.inference_time = time.perf_counter() - start
            return outputs

        def infer(self, feed_dict: Mapping[str, np.ndarray], check_inputs: bool = False, *args: Any,
                  **kwargs: Any) -> Any:
            # inputs are checked by our runners; torch modules take them by position, not name
            return super().infer(feed_dict, False, *args, **kwargs)

        def deactivate_impl(self) -> None:
            runner.deactivate()

    return Wrapped()


def compare_runners(reference: Runner, candidate: Runner, feeds: Sequence[Mapping[str, np.ndarray]], *,
                    atol: float | Callable[[np.ndarray], float]) -> Comparison:
    """Run both on every feed (Polygraphy's ``Comparator.run``) and compare with its ``simple``
    function (max absolute error; outputs matched by name, else by position)."""
    import numpy as np

    with polygraphy_quiet():  # imports Polygraphy, or a one-line EngineBuildError saying how to install it
        from polygraphy.comparator import Comparator, CompareFunc
    wrapped = [_polygraphy_runner(reference), _polygraphy_runner(candidate)]
    tolerances: list[float] = []
    diffs: list[float] = []
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def compare(ref: Any, cand: Any) -> Any:
        ref_out, cand_out = next(iter(ref.values())), next(iter(cand.values()))
        shapes.append((tuple(ref_out.shape), tuple(cand_out.shape)))
        tol = float(atol(np.asarray(ref_out)) if callable(atol) else atol)
        tolerances.append(tol)
        if ref_out.shape != cand_out.shape:
            diffs.append(float("inf"))
            return {name: False for name in ref}
        outcome = CompareFunc.simple(atol=tol, rtol=0.0, check_error_stat="max")(ref, cand)
        diffs.append(max(r.max_absdiff if r.max_absdiff is not None else float("inf") for r in outcome.values()))
        return outcome

    with polygraphy_quiet():
        results = Comparator.run(wrapped, data_loader=[dict(f) for f in feeds])
        Comparator.compare_accuracy(results, compare_func=compare)
    passed = [bool(np.isfinite(d) and d <= t) for d, t in zip(diffs, tolerances)]
    return Comparison(diffs, tolerances, passed, shapes)
