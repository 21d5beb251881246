"""accuracy-latency report: Pareto frontier, winner per budget, machine-mix refusal, resume from cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsp_deploy.cli.main import main
from dsp_deploy.errors import BenchError
from dsp_deploy.frontier import JSON_FORMAT
from dsp_deploy.frontier.report import (
    check_machines,
    headline_tables,
    pareto_front,
    winner_line,
    winners,
    write_report,
)
from dsp_deploy.frontier.runner import cached_result, skipped_rows
from dsp_deploy.frontier.settings import NO_FLOPS_ROW, settings_for

HERE = {"cpu": "AMD EPYC 7B13", "isa": "AVX2"}
THERE = {"cpu": "Intel Xeon 8480", "isa": "AVX-512"}


def _row(method: str, seed: int, kind: str, budget: float, acc: float, speedup: float, machine: dict = HERE,
         converged: bool = True) -> dict:
    return {"model": "resnet20", "method": method, "label": method.upper(), "seed": seed, "budget_kind": kind,
            "budget": budget, "status": "ok", "reason": "", "flops": int(40e6 / budget), "params": 100_000,
            "latency_ms": {"1": 1.0 / speedup, "32": 30.0 / speedup}, "dense_ms": {"1": 1.0, "32": 30.0},
            "speedup": {"1": speedup, "32": speedup}, "match_error_pct": 100 * (budget / speedup - 1),
            "converged": converged, "test_accuracy": acc, "train_seconds": 1.0, "machine": machine}


def _doc(rows: list[dict]) -> dict:
    return {"format": JSON_FORMAT, "format_version": 1, "budget": "quick", "quick": True, "machine": HERE,
            "settings": {"match_batch": 32, "batches": [1, 32], "data": "synthetic:64", "test_limit": None},
            "rows": rows, "command": "hand-made", "training_budget": "n/a"}


def test_pareto_front() -> None:
    points = [(1.0, 80.0), (2.0, 85.0), (1.5, 79.0), (3.0, 84.0), (0.5, 70.0), (2.0, 86.0), (4.0, 90.0)]
    assert [points[i] for i in pareto_front(points)] == [(0.5, 70.0), (1.0, 80.0), (2.0, 86.0), (4.0, 90.0)]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 50.0), (1.0, 50.0)]) == [0]  # a tie is not an improvement


def test_winner_per_budget_from_hand_made_results() -> None:
    rows = [
        _row("l1", 0, "latency", 2.0, 90.0, 2.02), _row("l1", 1, "latency", 2.0, 91.0, 1.98),
        _row("dsp-g2", 0, "latency", 2.0, 88.0, 2.01), _row("dsp-g2", 1, "latency", 2.0, 89.5, 1.97),
        _row("dsp-g2", 0, "latency", 3.0, 85.0, 3.0), _row("l1", 0, "latency", 3.0, 84.0, 3.05),
        _row("pfs", 0, "latency", 3.0, 99.0, 2.2, converged=False),  # missed the budget: not counted
        _row("l1", 0, "flops", 2.0, 70.0, 1.4), _row("dsp-g2", 0, "flops", 2.0, 75.0, 1.0),
    ]
    got = winners(_doc(rows))
    at2, at3 = got[("resnet20", 2.0)], got[("resnet20", 3.0)]
    assert [c.method for c in at2] == ["l1", "dsp-g2"]
    assert at2[0].mean == pytest.approx(90.5) and at2[1].spread == pytest.approx(1.0606, abs=1e-3)
    assert winner_line(at2) == "**L1** wins by 1.75 points over DSP-G2"
    assert [c.method for c in at3] == ["dsp-g2", "l1"]
    assert winner_line(at3) == "**DSP-G2** wins by 1.00 points over L1"
    assert winners(_doc(rows), "flops")[("resnet20", 2.0)][0].method == "dsp-g2"


def test_headline_table_marks_winner_partial_and_missing() -> None:
    rows = [
        {**_row("dense", 0, "dense", 1.0, 92.0, 1.0), "method": "dense"},
        _row("l1", 0, "latency", 2.0, 90.0, 2.02), _row("l1", 1, "latency", 2.0, 91.0, 1.98),
        _row("dsp-g2", 0, "latency", 2.0, 88.0, 2.01), _row("dsp-g2", 1, "latency", 2.0, 89.5, 1.7, converged=False),
        _row("dsp-g2", 0, "latency", 3.0, 85.0, 3.0), _row("l1", 0, "latency", 3.0, 84.0, 2.0, converged=False),
        _row("l1", 1, "latency", 3.0, 83.0, 2.1, converged=False),
    ]
    text = "\n".join(headline_tables(_doc(rows)))
    assert "resnet20 (dense: 92.00% test accuracy, mean of 1 seeds):" in text
    assert "| method | 2x faster | 3x faster |" in text
    assert "| L1 | **90.50** | - |" in text  # winner at 2x; no seed within tolerance at 3x
    assert "| DSP-G2 | 88.00 (1/2 seeds) | **85.00 (1/2 seeds)** |" in text


def test_report_refuses_mixed_machines_unless_told(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = _doc([_row("l1", 0, "latency", 2.0, 90.0, 2.0), _row("dsp-g2", 0, "latency", 2.0, 88.0, 2.0, THERE)])
    with pytest.raises(BenchError, match="mix 2 machines"):
        check_machines(doc)
    assert len(check_machines(doc, allow_mixed=True)) == 2
    src = tmp_path / "results.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "report"
    assert main(["accuracy-latency", "--report-only", str(src), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-mixed-machines" in err[0]
    assert not out.exists()  # nothing half-written
    assert main(["accuracy-latency", "--report-only", str(src), "--out", str(out), "--allow-mixed-machines"]) == 0
    text = (out / "report.md").read_text()
    assert "QUICK RUN" in text and "wins by 2.00 points" in text
    assert (out / "accuracy_vs_latency.png").stat().st_size > 1000
    assert json.loads((out / "results.json").read_text())["format"] == JSON_FORMAT


def test_quick_report_never_lands_on_the_full_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default folders: a quick run's report goes to accuracy_latency/quick/, a full run's to accuracy_latency/."""
    monkeypatch.chdir(tmp_path)
    rows = [_row("l1", 0, "latency", 2.0, 90.0, 2.0)]
    folders = {"quick": "bench/results/accuracy_latency/quick", "full": "bench/results/accuracy_latency"}
    for budget, folder in folders.items():
        src = tmp_path / f"{budget}.json"
        src.write_text(json.dumps({**_doc(rows), "budget": budget, "quick": budget == "quick"}))
        assert main(["accuracy-latency", "--report-only", str(src)]) == 0
        assert json.loads((tmp_path / folder / "results.json").read_text())["budget"] == budget
    assert "QUICK RUN" not in (tmp_path / "bench/results/accuracy_latency/report.md").read_text()


def test_resume_skips_cached_models(tmp_path: Path) -> None:
    calls: list[int] = []

    def produce() -> dict:
        calls.append(1)
        return {"method": "l1", "test_accuracy": 50.0}

    path = tmp_path / "l1" / "latency-2" / "result.json"
    first, cached = cached_result(path, produce)
    assert not cached and calls == [1]
    again, cached = cached_result(path, produce)
    assert cached and again == first and calls == [1]  # not trained again
    path.write_text('{"format": "dsp-deploy/accuracy-latency-model", "row"')  # torn by a kill
    _, cached = cached_result(path, produce)
    assert not cached and calls == [1, 1]


def test_cached_only_trains_nothing(tmp_path: Path) -> None:
    """--cached-only on a model and seed without a cached dense model lists every row as not run and
    writes nothing (building the run would train and time the dense model)."""
    from dsp_deploy.frontier.run import NOT_CACHED, run_all

    settings = settings_for("quick", data="synthetic:64")
    doc = run_all(settings, tmp_path / "cache", cached_only=True)
    assert doc["rows"] and all(r["status"] == "skipped" and r["reason"] == NOT_CACHED for r in doc["rows"])
    assert {r["method"] for r in doc["rows"]} == {"dense", *settings.methods}
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_settings_key_tracks_training_settings() -> None:
    quick = settings_for("quick")
    assert quick.key() == settings_for("quick", runs=99, min_seconds=5.0, stat="min").key()  # timing: no retraining
    assert quick.key() != settings_for("quick", final_epochs=5).key()
    assert settings_for("full").seeds == (0, 1) and settings_for("full").models == ("resnet20", "resnet56")


def test_timing_line_names_the_statistic() -> None:
    """The report says which statistic every latency is (the full run's minimums, or medians)."""
    from dataclasses import asdict

    from dsp_deploy.errors import UsageError
    from dsp_deploy.frontier.report import _timing_line

    full = asdict(settings_for("full"))
    assert _timing_line(full).startswith("- timing: minimums (robust to contention")
    assert "at least 30 interleaved runs and 3 s per batch" in _timing_line(full)
    assert _timing_line(asdict(settings_for("quick"))).startswith("- timing: medians of 8 interleaved runs per batch")
    with pytest.raises(UsageError, match="stat must be one of median, min, not 'mean'"):
        settings_for("full", stat="mean")


def test_report_with_latency_targeted_rows(tmp_path: Path) -> None:
    settings = settings_for("quick")
    rows = [
        _row("l1", 0, "latency", 2.0, 80.0, 2.01),
        _row("dsp-latency", 0, "latency", 2.0, 82.0, 1.97),
        _row("dsp-latency", 0, "latency", 3.0, 70.0, 2.5, converged=False),
        _row("l1", 0, "flops", 2.0, 81.0, 1.6),
        *skipped_rows("resnet20", 0, settings, "dsp-latency", NO_FLOPS_ROW, kinds=("flops",)),
    ]
    files = write_report(_doc(rows), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "**DSP-LATENCY** wins by 2.00 points over L1" in text
    assert f"- DSP latency-targeted: {NO_FLOPS_ROW}" in text  # the "Not run" section
    assert "accuracy_vs_flops.png" in files and (tmp_path / "accuracy_vs_flops.png").stat().st_size > 1000
    kinds = {(r["budget_kind"], r["status"]) for r in json.loads((tmp_path / "results.json").read_text())["rows"]
             if r["method"] == "dsp-latency"}
    assert kinds == {("latency", "ok"), ("flops", "skipped")}


def test_cached_imagenet_estimate_takes_todays_citations() -> None:
    """Timings measured earlier are kept; citations and check marks come from PUBLISHED (a source found
    later updates the report without re-measuring); an unknown point keeps what it had."""
    from dsp_deploy.frontier.imagenet import NOT_INCLUDED, PUBLISHED, _current_citations

    scp = next(p for p in PUBLISHED if p.label == "SCP")
    est = {"points": [{"method": "channel", "flops_pruned_pct": scp.flops_pruned_pct, "citation": "old",
                       "verified": True, "latency_ms_b1": 12.5},
                      {"method": "channel", "flops_pruned_pct": 12.0, "citation": "other", "verified": True}],
           "not_included": "old"}
    got = _current_citations(est)
    assert got["points"][0] == {"method": "channel", "flops_pruned_pct": scp.flops_pruned_pct,
                                "citation": scp.citation, "verified": scp.verified, "latency_ms_b1": 12.5}
    assert got["points"][1]["citation"] == "other" and got["points"][1]["verified"] is True
    assert got["not_included"] == NOT_INCLUDED
