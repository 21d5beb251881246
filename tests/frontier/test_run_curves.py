"""The accuracy-latency run hands each method's measured points to its later latency matches
(``match_ratio``'s ``prior``) when every budget prunes the same checkpoint."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from dsp_deploy.frontier.run import ModelSeedRun
from dsp_deploy.frontier.settings import settings_for


def _run(budget: str) -> ModelSeedRun:
    run = ModelSeedRun.__new__(ModelSeedRun)  # no dense model trained: only the bookkeeping is exercised
    run.runner = SimpleNamespace(settings=settings_for(budget))
    run.curves = {}
    return run


FLOPS_ROW = {"status": "ok", "ratio": 0.2, "speedup": {"1": 1.1, "32": 1.02}}
LATENCY_ROW = {"status": "ok", "match": {"steps": [
    {"ratio": 0.7, "error_pct": 10.0, "latency_ms": 9.0},
    {"ratio": 0.95, "error_pct": math.nan, "latency_ms": math.nan},  # out of the method's reach: no point
]}}


def test_flops_and_latency_rows_feed_one_curve_per_method() -> None:
    run = _run("full")
    run._learn_curve("dsp-g2", "flops", 1.25, FLOPS_ROW)
    run._learn_curve("dsp-g2", "latency", 1.5, LATENCY_ROW)
    run._learn_curve("l1", "latency", 1.5, {**LATENCY_ROW, "status": "skipped"})
    assert run.curves == {"dsp-g2": [(0.2, 1.02), (0.7, pytest.approx(1.5 / 1.1))]}


@pytest.mark.parametrize("method", ["pfs", "scp", "dsp-latency"])
def test_methods_without_one_source_keep_no_curve(method: str) -> None:
    run = _run("full")  # PFS/SCP search anew at every budget; dsp-latency is not ratio-matched
    run._learn_curve(method, "flops", 1.25, FLOPS_ROW)
    run._learn_curve(method, "latency", 1.5, LATENCY_ROW)
    assert run.curves == {}
