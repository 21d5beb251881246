"""Replacing one method's rows of a committed accuracy-latency run: comparable runs merge in place,
anything else (machine, training settings, dense model) is refused with a message naming it."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from dsp_deploy.cli.main import main
from dsp_deploy.errors import BenchError
from dsp_deploy.frontier import JSON_FORMAT
from dsp_deploy.frontier.merge import replace_rows
from dsp_deploy.frontier.settings import settings_for

MACHINE = {"cpu": "AMD EPYC", "isa": "AVX-512"}


def _row(method: str, seed: int, budget: float, acc: float | None, status: str = "ok") -> dict:
    kind = "dense" if method == "dense" else "latency"
    return {"model": "resnet20", "method": method, "label": method, "seed": seed, "budget_kind": kind,
            "budget": budget, "status": status, "reason": "" if status == "ok" else "out of reach",
            "flops": 1000, "params": 10, "latency_ms": {"1": 1.0, "32": 30.0 / budget},
            "dense_ms": {"1": 1.0, "32": 30.0}, "speedup": {"1": 1.0, "32": budget}, "match_error_pct": 0.0,
            "converged": True, "test_accuracy": acc, "train_seconds": 1.0, "machine": MACHINE}


def _doc(methods: tuple[str, ...], rows: list[dict], **settings) -> dict:
    s = settings_for("full", methods=methods)
    s = type(s)(**{**asdict(s), **settings})
    return {"format": JSON_FORMAT, "format_version": 1, "budget": "full", "quick": False, "machine": MACHINE,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()},
            "rows": rows, "command": f"run {','.join(methods)}", "created": "2026-12-02T00:00:00Z",
            "wall_seconds": 60.0, "training_budget": "n/a"}


def _base(**settings) -> dict:
    rows = []
    for seed in (0, 1):
        rows += [_row("dense", seed, 1.0, 80.0 + seed), _row("dsp-g2", seed, 1.5, 78.0),
                 _row("dsp-latency", seed, 1.5, None, status="skipped"), _row("l1", seed, 1.5, 79.0)]
    return _doc(("dsp-g2", "dsp-latency", "l1"), rows, **settings)


def _update(dense_acc: float = 80.0, **settings) -> dict:
    return _doc(("dsp-latency",), [_row("dense", 0, 1.0, dense_acc), _row("dsp-latency", 0, 1.5, 77.5)], **settings)


def test_rows_of_the_update_methods_replace_the_old_ones_in_place() -> None:
    base = _base()
    merged = replace_rows(base, _update(), source="later.json")
    assert [(r["seed"], r["method"], r["status"]) for r in merged["rows"]] == [
        (0, "dense", "ok"), (0, "dsp-g2", "ok"), (0, "dsp-latency", "ok"), (0, "l1", "ok"),
        (1, "dense", "ok"), (1, "dsp-g2", "ok"), (1, "dsp-latency", "skipped"), (1, "l1", "ok")]
    assert merged["rows"][2]["test_accuracy"] == 77.5 and merged["rows"][0]["test_accuracy"] == 80.0
    assert merged["replaced"] == [{"methods": ["dsp-latency"], "rows": 1, "command": "run dsp-latency",
                                   "created": "2026-12-02T00:00:00Z", "wall_seconds": 60.0, "source": "later.json"}]
    assert base["rows"][2]["status"] == "skipped"  # the input is not modified


def test_rows_of_a_method_the_results_lack_are_added_and_say_so() -> None:
    """A later run of a new method (``--methods dsp-shaped``) adds its rows after the others; the report's
    line says added, not replaced, and the document takes the later run's training-budget sentence."""
    from dsp_deploy.frontier.merge import replaced_lines

    update = _doc(("dsp-shaped",), [_row("dense", 0, 1.0, 80.0), _row("dsp-shaped", 0, 1.5, 79.5)])
    update["training_budget"] = "n/a, and DSP shaped for the CPU as DSP"
    merged = replace_rows(_base(), update, source="later.json")
    assert [(r["seed"], r["method"]) for r in merged["rows"]][-1] == (0, "dsp-shaped")
    assert len(merged["rows"]) == len(_base()["rows"]) + 1 and merged["replaced"][0]["added"] == ["dsp-shaped"]
    assert replaced_lines(merged)[0].startswith("rows of dsp-shaped (1) added by a later run")
    assert merged["training_budget"].endswith("DSP shaped for the CPU as DSP")
    assert replaced_lines(replace_rows(_base(), _update()))[0].startswith("rows of dsp-latency (1) replaced by")
    other = _doc(("dsp-shaped",), [dict(_row("dsp-shaped", 0, 1.5, 79.0), model="resnet56")])
    assert replace_rows(merged, other)["replaced"][-1]["added"] == ["dsp-shaped"]  # new to that model


def test_rows_timed_otherwise_are_merged_and_say_how() -> None:
    """Longer timing windows do not change a trained model: the rows merge, and the report names the difference."""
    from dsp_deploy.frontier.merge import replaced_lines

    base = _base(min_seconds=0.0)
    del base["settings"]["min_seconds"]  # written before the setting existed: its default, 0
    merged = replace_rows(base, _update(min_seconds=3.0, runs=40))
    entry = merged["replaced"][0]
    assert entry["timing"] == {"runs": 40, "min_seconds": 3.0}
    assert entry["timing_of_the_rest"] == {"runs": 30, "min_seconds": 0.0}
    assert replaced_lines(merged)[0].endswith("; timed with runs 40, min seconds 3.0 (the other rows: runs 30, "
                                              "min seconds 0.0)")
    assert "timing" not in replace_rows(_base(), _update())["replaced"][0]


def test_a_model_seed_re_run_with_every_method_brings_its_dense_row() -> None:
    """Seed 0 re-run with all of the base's methods: its dense row (same model, re-timed) comes along;
    seed 1's and a partial re-run's dense rows stay."""
    from dsp_deploy.frontier.merge import replaced_lines

    dense = {**_row("dense", 0, 1.0, 80.0), "latency_ms": {"1": 0.9, "32": 27.0}}
    update = _doc(("dsp-g2", "dsp-latency", "l1"), [dense, _row("dsp-g2", 0, 1.5, 78.5),
                                                    _row("dsp-latency", 0, 1.5, 77.0), _row("l1", 0, 1.5, 79.5)])
    merged = replace_rows(_base(), update)
    assert [r["latency_ms"]["32"] for r in merged["rows"] if r["method"] == "dense"] == [27.0, 30.0]
    assert merged["replaced"][0]["rows"] == 4 and merged["replaced"][0]["dense_retimed"] == ["resnet20 seed 0"]
    assert replaced_lines(merged)[0].endswith("; its dense rows too (resnet20 seed 0: every method re-run)")
    partial = _doc(("dsp-latency",), [dense, _row("dsp-latency", 0, 1.5, 77.0)])
    assert [r["latency_ms"]["32"] for r in replace_rows(_base(), partial)["rows"] if r["method"] == "dense"] == [
        30.0, 30.0]


@pytest.mark.parametrize("update, message", [
    (_update(dense_acc=80.5), "dense resnet20 seed 0 tests at 80.5%, the results' at 80.0%"),
    (_update(dense_epochs=9), "trained under other settings"),
    ({**_update(), "machine": {"cpu": "Intel Xeon", "isa": "AVX2"}}, "latencies from two machines"),
    (_doc(("scp",), [_row("dense", 0, 1.0, 80.0)]), "no rows of its methods (scp)"),
])
def test_incomparable_runs_are_refused(update, message) -> None:
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        replace_rows(_base(), update)


def test_cli_replace_rows_writes_the_merged_report(tmp_path, capsys) -> None:
    base, update, out = tmp_path / "base.json", tmp_path / "update.json", tmp_path / "out"
    base.write_text(json.dumps(_base()))
    update.write_text(json.dumps(_update()))
    assert main(["accuracy-latency", "--report-only", str(base), "--replace-rows", str(update), "--out", str(out),
                 "--no-imagenet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in doc["rows"] if r["method"] == "dsp-latency"] == ["ok", "skipped"]
    assert "rows of dsp-latency (1) replaced by a later run" in (out / "report.md").read_text()
    update.write_text(json.dumps(_update(dense_acc=70.0)))
    assert main(["accuracy-latency", "--report-only", str(base), "--replace-rows", str(update),
                 "--out", str(tmp_path / "refused")]) != 0
    assert "tests at 70.0%" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    assert main(["accuracy-latency", "--replace-rows", str(update)]) != 0
