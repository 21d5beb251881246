"""The accuracy-at-latency report: results.json/.csv, report.md (per budget: mean and spread of test
accuracy over seeds, measured latency vs budget, the winner and by how many points) and the plots.

A results document whose rows were measured on different machines (CPU model or ISA differ) is
refused unless ``allow_mixed`` is given: latencies from two machines do not share an axis.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.errors import BenchError
from dsp_deploy.frontier import JSON_FORMAT
from dsp_deploy.frontier.merge import replaced_lines
from dsp_deploy.utils.atomic import write_text_atomic
from dsp_deploy.utils.jsonfile import read_json_object

CSV_COLUMNS = (
    "model",
    "method",
    "seed",
    "budget_kind",
    "budget",
    "status",
    "flops",
    "params",
    "flops_reduction_pct",
    "latency_b1_ms",
    "latency_b32_ms",
    "speedup_b1",
    "speedup_b32",
    "match_error_pct",
    "test_accuracy",
    "train_seconds",
    "reason",
)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (lower or equal latency x and higher accuracy y, one
    of them strictly), ordered by x: the latency/accuracy frontier."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def check_machines(doc: dict[str, Any], allow_mixed: bool = False) -> list[str]:
    """The distinct machine fingerprints of the rows; BenchError when more than one and not allowed."""
    seen = {
        json.dumps(r.get("machine") or doc.get("machine") or {}, sort_keys=True)
        for r in doc.get("rows", [])
        if r.get("status") == "ok"
    }
    if len(seen) > 1 and not allow_mixed:
        names = "; ".join(" / ".join(json.loads(s).values()) for s in sorted(seen))
        raise BenchError(
            f"results mix {len(seen)} machines ({names}): latencies are not comparable; "
            "rerun on one machine or pass --allow-mixed-machines"
        )
    return sorted(seen)


def read_results(path: str | Path) -> dict[str, Any]:
    return read_json_object(path, BenchError, "accuracy-latency results file", format_name=JSON_FORMAT)


@dataclass
class Cell:
    """One method at one budget: accuracy over seeds and the measured latency at the match batch."""

    method: str
    label: str
    accuracies: list[float]
    speedups: list[float]
    errors: list[float]
    flops: list[int]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def cells(rows: Iterable[dict[str, Any]], model: str, kind: str, budget: float, batch: int) -> list[Cell]:
    """Per method, the ok rows of ``model`` at ``(kind, budget)`` (latency rows only when within tolerance)."""
    by: dict[str, Cell] = {}
    for r in rows:
        if (r.get("model"), r.get("budget_kind"), r.get("budget"), r.get("status")) != (model, kind, budget, "ok"):
            continue
        if kind == "latency" and r.get("converged") is False:
            continue
        c = by.setdefault(r["method"], Cell(r["method"], r.get("label", r["method"]), [], [], [], []))
        c.accuracies.append(float(r["test_accuracy"]))
        c.speedups.append(float(r["speedup"][str(batch)]))
        c.errors.append(float(r.get("match_error_pct") or 0.0))
        c.flops.append(int(r["flops"]))
    return sorted(by.values(), key=lambda c: -c.mean)


def winner_line(found: Sequence[Cell]) -> str:
    """ "**L1 channel** wins by 1.23 points over DSP G=2" (or why there is no winner)."""
    if not found:
        return "no method reached this budget"
    if len(found) == 1:
        return f"**{found[0].label}** (the only method within tolerance)"
    first, second = found[0], found[1]
    return f"**{first.label}** wins by {first.mean - second.mean:.2f} points over {second.label}"


def winners(doc: dict[str, Any], kind: str = "latency") -> dict[tuple[str, float], list[Cell]]:
    """(model, budget) -> cells best first, for every budget of ``kind``."""
    batch = int(doc["settings"]["match_batch"])
    rows = doc["rows"]
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for budget in sorted({r["budget"] for r in rows if r["model"] == model and r.get("budget_kind") == kind}):
            out[(model, budget)] = cells(rows, model, kind, budget, batch)
    return out


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *["| " + " | ".join(r) + " |" for r in body],
    ]


def _budget_tables(doc: dict[str, Any], kind: str) -> list[str]:
    batch = int(doc["settings"]["match_batch"])
    lines = []
    for (model, budget), found in winners(doc, kind).items():
        what = (
            f"{budget:g}x faster than dense (measured, batch {batch})"
            if kind == "latency"
            else f"{budget:g}x fewer FLOPs than dense"
        )
        lines += ["", f"### {model}: {what}", "", f"Winner: {winner_line(found)}", ""]
        body = []
        for c in found:
            speed = f"{statistics.fmean(c.speedups):.2f}x" + (
                f" (budget {budget:g}x; error {', '.join(f'{e:+.1f}%' for e in c.errors)})" if kind == "latency" else ""
            )
            body.append(
                [
                    c.label,
                    f"{c.mean:.2f}",
                    f"{c.spread:.2f}",
                    str(len(c.accuracies)),
                    speed,
                    f"{statistics.fmean(c.flops) / 1e6:.2f}",
                ]
            )
        lines += _table(
            [
                "method",
                "test acc. mean %",
                "std (seeds)",
                "seeds",
                f"measured speedup b={batch}",
                "MFLOPs at this budget",
            ],
            body,
        )
        missed = [
            r
            for r in doc["rows"]
            if (r["model"], r.get("budget_kind"), r.get("budget")) == (model, kind, budget)
            and (r.get("status") != "ok" or (kind == "latency" and r.get("converged") is False))
        ]
        for r in missed:
            lines.append(
                f"- {r.get('label', r['method'])} seed {r['seed']}: not counted: "
                f"{r.get('reason') or 'not within tolerance'}"
                + (f" (closest: {r['speedup'][str(batch)]:.2f}x)" if r.get("speedup") else "")
            )
    return lines


def headline_tables(doc: dict[str, Any]) -> list[str]:
    """Per model, one table: test accuracy (mean over the seeds within tolerance) of every method at
    every latency budget, the winner in bold; "-" where no seed of a method reached the budget."""
    found = winners(doc, "latency")
    lines: list[str] = []
    for model in dict.fromkeys(m for m, _ in found):
        budgets = [b for m, b in found if m == model]
        seeds = {r["seed"] for r in doc["rows"] if r["model"] == model}
        methods = dict.fromkeys(r["method"] for r in doc["rows"] if r["model"] == model and r["method"] != "dense")
        labels = {r["method"]: r.get("label", r["method"]) for r in doc["rows"]}
        dense = [float(r["test_accuracy"]) for r in doc["rows"]
                 if r["model"] == model and r["method"] == "dense" and r.get("status") == "ok"]
        body = []
        for method in methods:
            row = [labels[method]]
            for budget in budgets:
                cells_here = found[(model, budget)]
                cell = next((c for c in cells_here if c.method == method), None)
                if cell is None:
                    row.append("-")
                    continue
                text = f"{cell.mean:.2f}" + (f" ({len(cell.accuracies)}/{len(seeds)} seeds)"
                                             if len(cell.accuracies) < len(seeds) else "")
                row.append(f"**{text}**" if cell is cells_here[0] else text)
            body.append(row)
        dense_text = f"{statistics.fmean(dense):.2f}" if dense else "-"
        lines += ["", f"{model} (dense: {dense_text}% test accuracy, mean of {len(dense)} seeds):", ""]
        lines += _table(["method", *[f"{b:g}x faster" for b in budgets]], body)
    return lines


def rows_table(doc: dict[str, Any]) -> list[str]:
    body = []
    for r in doc["rows"]:
        if r.get("status") != "ok":
            continue
        lat, sp = r["latency_ms"], r["speedup"]
        body.append(
            [
                r["model"],
                r.get("label", r["method"]),
                str(r["seed"]),
                f"{r['budget_kind']} {r['budget']:g}x",
                f"{r['flops'] / 1e6:.2f}",
                f"{r['params'] / 1e3:.1f}",
                " / ".join(f"{float(lat[b]):.3f}" for b in sorted(lat, key=int)),
                " / ".join(f"{float(sp[b]):.2f}x" for b in sorted(sp, key=int)),
                "-" if r.get("match_error_pct") is None else f"{r['match_error_pct']:+.1f}%",
                f"{r['test_accuracy']:.2f}",
                f"{r.get('train_seconds', 0):.0f}",
            ]
        )
    batches = "/".join(str(b) for b in doc["settings"]["batches"])
    return _table(
        [
            "model",
            "method",
            "seed",
            "budget",
            "MFLOPs",
            "params (K)",
            f"latency ms b={batches}",
            f"speedup b={batches}",
            "latency vs budget",
            "test acc. %",
            "train s",
        ],
        body,
    )


def _timing_line(settings: dict[str, Any]) -> str:
    """How latencies were taken: runs per median, match steps, the export's planning."""
    batches = settings.get("plan_batches") or settings.get("batches", [])
    least = settings.get("min_seconds") or 0
    runs = f"at least {settings.get('runs')} interleaved runs and {least:g} s" if least else (
        f"{settings.get('runs')} interleaved runs")
    stat = "minimums (robust to contention on a shared host; runtime.timing.STATS)" if settings.get("stat") == "min" \
        else "medians"
    return (
        f"- timing: {stat} of {runs} per batch, at most "
        f"{settings.get('match_steps')} measured ratios per latency match; exports planned per block at batch "
        f"{'/'.join(str(b) for b in batches)} ({settings.get('plan_runs')} runs per candidate)"
    )


def report_markdown(doc: dict[str, Any], plots: Sequence[str] = ()) -> str:
    quick = doc.get("quick")
    m = doc["machine"]
    title = "Accuracy at equal measured latency: DSP vs channel pruning" + (
        " (QUICK RUN: not a result)" if quick else ""
    )
    lines = [f"# {title}", ""]
    if quick:
        lines += [
            "**Quick run**: tiny data subset and epochs, one seed, methods "
            f"{', '.join(doc['settings'].get('methods', []))}; it checks the pipeline, its accuracies say "
            "nothing about the methods.",
            "",
            "**The result is the full run**: `python bench/accuracy_latency.py --budget full` (ResNet-20 and "
            "ResNet-56, seeds 0 and 1, every method, Fashion-MNIST 5000-image subset; resumable), committed in "
            "bench/results/accuracy_latency/report.md.",
            "",
        ]
    load = doc.get("load", {})
    lines += [
        f"- machine: {m.get('cpu')} ({m.get('isa')}); ONNX Runtime CPU, 1 intra-op thread; load average "
        f"{load.get('loadavg_before')} -> {load.get('loadavg_after')} on {load.get('cores')} cores",
        f"- command: `{doc.get('command')}` ({doc.get('wall_seconds')} s wall, {doc.get('reused_rows', 0)} "
        f"rows from the cache; the rows' own training + latency-matching time, summed over every run that "
        f"resumed into this one: {_row_seconds(doc) / 3600:.2f} h)",
        *[f"- {note}" for note in doc.get("notes", [])],
        *[f"- {line}" for line in replaced_lines(doc)],
        f"- data: {doc.get('data_note') or doc['settings']['data']}",
        f"- same training budget for every method: {doc.get('training_budget')}",
        "- latency budgets: each method's structure is pruned to the ratio whose measured latency "
        f"({doc['settings'].get('stat', 'median')}, interleaved with dense in one process; rows replaced by a run "
        "timed otherwise: as its line above says) is within 5% of dense/budget at the match batch; DSP "
        "latency-targeted instead prunes to the budget as `prune --speedup` does (its latency table shapes the "
        "structure and gives the first try, measured corrections search the FLOPs reduction, up to "
        f"{doc['settings'].get('match_steps')} measured tries per channel alignment, as many as a "
        "latency match, aiming within half the tolerance since the run times its result again) and is measured "
        "the same way. FLOPs budgets prune to dense FLOPs/budget. Accuracy: test split"
        + (f" (first {doc['settings']['test_limit']} images)" if doc["settings"].get("test_limit") else ""),
        _timing_line(doc["settings"]),
    ]
    lines += [
        "",
        "## Headline: test accuracy (%) at each measured latency budget",
        "",
        f"Mean over the seeds whose model ran within 5% of the budget (batch {doc['settings']['match_batch']}); "
        "the winner in bold; \"-\": no seed of that method reached the budget (the sections below say why).",
        *headline_tables(doc),
        "",
        "## Winner at each latency budget",
        *_budget_tables(doc, "latency"),
        "",
        "## At the matching FLOPs budgets",
        *_budget_tables(doc, "flops"),
    ]
    skipped = {(r.get("label", r["method"]), r.get("reason")) for r in doc["rows"] if r.get("status") == "skipped"}
    if skipped:
        lines += ["", "## Not run", *[f"- {label}: {reason}" for label, reason in sorted(skipped)]]
    lines += ["", "## Every model", "", *rows_table(doc)]
    lines += ["", *[f"![{p}]({p})" for p in plots]]
    return "\n".join(lines) + "\n"


def results_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in doc["rows"]:
        lat, sp = r.get("latency_ms") or {}, r.get("speedup") or {}
        writer.writerow(
            {
                **r,
                "latency_b1_ms": lat.get("1"),
                "latency_b32_ms": lat.get("32"),
                "speedup_b1": sp.get("1"),
                "speedup_b32": sp.get("32"),
            }
        )
    return buf.getvalue()


def write_report(
    doc: dict[str, Any], out: str | Path, *, allow_mixed: bool = False, extra_md: Sequence[str] = ()
) -> list[str]:
    """Write results.json, results.csv, report.md and the plots to ``out``; returns the file names."""
    from dsp_deploy.frontier.plots import write_plots

    check_machines(doc, allow_mixed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", json.dumps(doc, indent=1) + "\n")
    write_text_atomic(out / "results.csv", results_csv(doc))
    plots = write_plots(doc, out)
    text = report_markdown(doc, plots)
    if extra_md:
        text += "\n" + "\n".join(extra_md) + "\n"
    write_text_atomic(out / "report.md", text)
    return ["results.json", "results.csv", "report.md", *plots]


def _row_seconds(doc: dict[str, Any]) -> float:
    """Training and latency-matching seconds recorded in the rows (a resumed run's earlier work included)."""
    return sum(float(row.get("train_seconds") or 0) + float(row.get("match_seconds") or 0) for row in doc["rows"])
