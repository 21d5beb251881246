"""Derived metrics, verdicts, headline lines and the report files, on hand-made results."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dsp_deploy.compare.plots import write_plots
from dsp_deploy.compare.report import render_markdown, write_report
from dsp_deploy.compare.results import (
    CompareResult,
    CompareRow,
    VariantInfo,
    add_speedups,
    headline_rows,
    read_results,
    verdicts,
)
from dsp_deploy.errors import BenchError

DENSE = 100_000_000


def variant(name: str, method: str, flops: int, matched_to: str | None = None) -> VariantInfo:
    return VariantInfo(name=name, method=method, label={"dense": "dense", "dsp": "DSP G=2", "l1-channel": "L1 channel",
                                                       "torch-pruning": "Torch-Pruning"}[method],
                       groups=2 if method == "dsp" else 1, flops=flops, params=1000, dense_flops=DENSE,
                       dense_params=2000, flops_reduction_pct=100 * (1 - flops / DENSE), dsp_flops_reduction_pct=None,
                       params_reduction_pct=50.0, matched_to=matched_to)


def row(name: str, batch: int, median: float, threads: int = 1, status: str = "ok") -> CompareRow:
    return CompareRow(variant=name, path="", backend="ort-cpu", threads=threads, batch=batch, status=status,
                      median_ms=median if status == "ok" else None, p90_ms=median * 1.1 if status == "ok" else None,
                      reason="" if status == "ok" else "no GPU")


@pytest.fixture
def result() -> CompareResult:
    variants = [variant("dense", "dense", DENSE), variant("dsp", "dsp", DENSE // 2),
                variant("l1", "l1-channel", DENSE // 2, "dsp"), variant("tp", "torch-pruning", DENSE // 2, "dsp")]
    medians = {"dense": (10.0, 80.0), "dsp": (5.0, 60.0), "l1": (6.0, 40.0), "tp": (8.0, 50.0)}
    rows = [row(n, b, m[i]) for n, m in medians.items() for i, b in enumerate((1, 8))]
    for r in rows:
        info = next(v for v in variants if v.name == r.variant)
        r.method, r.label, r.flops = info.method, info.label, info.flops
    res = CompareResult("resnet20", "test", "unit test", {"runs": 10, "warmup": 2}, variants, rows,
                        machine={"cpu": "x", "logical_cores": 2}, versions={"onnxruntime": "1"})
    add_speedups(res.rows, variants)
    return res


def test_speedup_and_efficiency(result: CompareResult) -> None:
    at = {(r.variant, r.batch): r for r in result.rows}
    assert at[("dense", 1)].speedup_vs_dense == 1.0
    assert at[("dsp", 1)].speedup_vs_dense == 2.0
    assert at[("dsp", 1)].efficiency == 1.0  # 2x faster at half the FLOPs
    assert at[("l1", 8)].speedup_vs_dense == 2.0 and at[("tp", 8)].efficiency == 0.8


def test_verdicts_pick_fastest_baseline(result: CompareResult) -> None:
    by_batch = {v.batch: v for v in verdicts(result)}
    assert by_batch[1].baseline == "l1" and by_batch[1].ratio == pytest.approx(1.2) and by_batch[1].winner == "dsp"
    assert by_batch[8].baseline == "l1" and by_batch[8].ratio == pytest.approx(40 / 60)
    assert by_batch[8].winner == "channel"


def test_headline_rows(result: CompareResult) -> None:
    lines = headline_rows(result)
    assert len(lines) == 1
    line = lines[0]
    assert "DSP G=2 2.00/1.33x" in line and "L1 channel 1.67/2.00x" in line and "mixed" in line


def test_skipped_rows_get_no_speedup(result: CompareResult) -> None:
    result.rows.append(row("dsp", 32, 0.0, status="skipped"))
    add_speedups(result.rows, result.variants)
    assert result.rows[-1].speedup_vs_dense is None
    assert "- ort-cpu (dsp): no GPU" in render_markdown(result)


def test_report_files_roundtrip(result: CompareResult, tmp_path: Path) -> None:
    write_report(result, tmp_path)
    back = read_results(tmp_path)
    assert back.to_dict() == json.loads(json.dumps(result.to_dict()))
    with open(tmp_path / "results.csv") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(result.rows) and float(lines[2]["speedup_vs_dense"]) == 2.0
    text = (tmp_path / "report.md").read_text()
    assert "| dsp | ort-cpu | 1 | 1 |" in text and "DSP by 1.20x" in text and "L1 channel by 1.50x" in text
    assert headline_rows(tmp_path / "results.json") == headline_rows(result)
    for png in write_plots(result, tmp_path):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_read_results_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BenchError, match="not a dsp-deploy compare results file"):
        read_results(tmp_path / "x.json")
    with pytest.raises(BenchError, match="no such file"):
        read_results(tmp_path / "missing.json")
