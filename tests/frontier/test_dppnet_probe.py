"""DPPNet in the accuracy-latency run: its fastest structure is exported and timed beside dense (real
export, real ONNX Runtime, tiny run counts), and each latency budget's row says whether it is in reach."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from dsp_deploy.frontier.dppnet_probe import PROBE_TAPS, dppnet_rows, probe_row
from dsp_deploy.frontier.settings import SKIPPED, settings_for


def _probe(speedup: float) -> dict:
    return {"model": "resnet20", "seed": 1, "taps": 1, "mac_reduction_pct": 80.4,
            "speedup": {"1": speedup, "32": speedup}}


def test_latency_rows_say_which_budgets_the_fastest_structure_misses() -> None:
    settings = settings_for("full")  # budgets 1.25x / 1.5x / 2x, matched at batch 32
    rows = dppnet_rows(_probe(1.3), settings)
    assert len(rows) == 6 and all(r["status"] == "skipped" and r["method"] == "dppnet" for r in rows)
    latency = {r["budget"]: r["reason"] for r in rows if r["budget_kind"] == "latency"}
    assert latency[1.25].endswith("measured 1.30x of dense at batch 32, timed beside this run's dense model: "
                                  "this budget is reachable)")
    assert latency[1.5].startswith("out of reach on this target: its fastest structure (every DPP conv keeping 1 "
                                   "of 9 taps, 80% fewer MACs) measured 1.30x")
    assert latency[2.0].startswith("out of reach")
    assert {r["reason"] for r in rows if r["budget_kind"] == "flops"} == {SKIPPED["dppnet"]}
    assert all(r["reason"].startswith("out of reach") for r in dppnet_rows(_probe(0.45), settings)
               if r["budget_kind"] == "latency")


def test_probe_exports_and_times_the_fastest_dppnet_beside_dense(tmp_path) -> None:
    import torch

    from dsp_deploy.compare.latency_match import OnnxMeasurer
    from dsp_deploy.export import export_onnx
    from dsp_deploy.models import create

    torch.manual_seed(0)
    dense = tmp_path / "dense.onnx"
    export_onnx(create("resnet20").eval(), dense, model_name="resnet20", lowering="dense")
    run = SimpleNamespace(base=tmp_path, model="resnet20", seed=0,
                          measurer=OnnxMeasurer(dense, tmp_path / "onnx", (1,), threads=1, runs=2, warmup=1))
    row = probe_row(run)
    assert row["taps"] == PROBE_TAPS and set(row["speedup"]) == {"1"} and row["speedup"]["1"] > 0
    # the speedup comes from the unrounded timings, the row's ms are rounded to 5 decimals
    assert row["speedup"]["1"] == pytest.approx(row["dense_ms"]["1"] / row["latency_ms"]["1"], abs=2e-4)
    assert 70 < row["mac_reduction_pct"] < 95  # 3x3 DPP convs at 1 of 9 taps; stem, 1x1 convs, classifier dense
    assert (tmp_path / "dppnet" / "probe.json").exists()
    run.measurer = None  # cached: a second call measures nothing
    assert probe_row(run) == row
