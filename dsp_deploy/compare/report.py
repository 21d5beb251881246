"""The report folder's text files: ``results.json``, ``results.csv`` and ``report.md`` (variant table,
latency tables per backend and thread count, where DSP wins or loses and by how much)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dsp_deploy.compare.results import (
    CompareResult,
    headline_rows,
    results_csv_text,
    summary_counts,
    verdicts,
    write_results_json,
)
from dsp_deploy.utils.atomic import write_text_atomic

PLOTS = (("latency_vs_flops.png", "Latency vs FLOPs"), ("speedup_vs_batch.png", "Speedup vs batch size"))


def _num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def variants_table(result: CompareResult) -> list[str]:
    header = ["variant", "method", "G", "MMACs", "FLOPs -% (whole)", "FLOPs -% (DSP conv.)", "params (M)",
              "MACs vs matched DSP", "MMACs the ONNX executes", "data-movement nodes", "exported by",
              "lowering chosen"]
    rows = []
    for v in result.variants:
        if not v.ok:
            rows.append([v.name, v.label, *["-"] * 9, f"skipped: {v.reason}"])
            continue
        match = f"{v.flops_match_pct:+.2f}% vs {v.matched_to}" if v.flops_match_pct is not None else "-"
        moves = ", ".join(f"{op} {n}" for op, n in sorted(v.movement_ops.items())) or "none"
        executed = "-" if v.onnx_flops is None else f"{v.onnx_flops / 1e6:.1f}"
        rows.append([v.name, v.label, str(v.groups), f"{v.flops / 1e6:.1f}", _num(v.flops_reduction_pct, 1),
                     _num(v.dsp_flops_reduction_pct, 1), f"{v.params / 1e6:.3f}", match, executed, moves,
                     v.exporter, v.lowering])
    return _table(header, rows)


def latency_tables(result: CompareResult) -> list[str]:
    rows_at = {(r.variant, r.backend, r.threads, r.batch): r for r in result.rows}
    out: list[str] = []
    batches = result.batches()
    for backend, threads in result.settings():
        out += ["", f"### {backend}, {threads} thread{'s' if threads != 1 else ''}", ""]
        header = ["variant", "FLOPs ratio"]
        for b in batches:
            header += [f"b={b} median / p90 ms", f"b={b} speedup", f"b={b} eff."]
        body = []
        for v in result.variants:
            cells = [v.name, _num(v.flops_ratio, 2, "x") if v.ok else "-"]
            for b in batches:
                r = rows_at.get((v.name, backend, threads, b))
                if r is None or not r.ok:
                    cells += ["skipped", "-", "-"]
                    continue
                cells += [f"{r.median_ms:.3f} / {r.p90_ms:.3f}", _num(r.speedup_vs_dense, 2, "x"),
                          _num(r.efficiency, 2)]
            body.append(cells)
        out += _table(header, body)
    return out


def verdict_summary(result: CompareResult) -> list[str]:
    """One bullet per matched baseline (and one for the fastest at each setting): DSP's win count and
    the range of baseline median / DSP median (> 1 means DSP is faster)."""
    items = verdicts(result, each=True)
    names = {v.name: v.label for v in result.variants}
    lines = []
    for baseline in dict.fromkeys(names[x.baseline] for x in items):
        mine = [x for x in items if names[x.baseline] == baseline]
        wins, losses = summary_counts(mine)
        ratios = sorted(x.ratio for x in mine)
        lines.append(f"- vs **{baseline}**: DSP faster in {wins} of {len(mine)} settings, slower in {losses}; "
                     f"ratio {ratios[0]:.2f}..{ratios[-1]:.2f} (median {ratios[len(ratios) // 2]:.2f})")
    fastest = verdicts(result)
    if fastest:
        wins, _ = summary_counts(fastest)
        lines.append(f"- vs **the fastest baseline** at each setting: DSP faster in {wins} of {len(fastest)}")
    return lines


def verdict_lines(result: CompareResult) -> list[str]:
    """The summary bullets, then one row per DSP variant and setting with the ratio against every
    matched baseline."""
    items = verdicts(result, each=True)
    if not items:
        return ["No DSP variant and matched baseline were both measured."]
    names = {v.name: v.label for v in result.variants}
    fastest = verdicts(result)
    lines = ["Ratio = baseline median / DSP median at the same backend, threads and batch: > 1 means DSP is "
             "faster.", "", *verdict_summary(result), ""]
    baselines = list(dict.fromkeys(names[x.baseline] for x in items))
    header = ["DSP variant", "backend", "threads", "batch", "DSP ms", *[f"vs {b}" for b in baselines], "fastest"]
    body = []
    for key in dict.fromkeys((x.dsp, x.backend, x.threads, x.batch) for x in items):
        row = {names[x.baseline]: x for x in items if (x.dsp, x.backend, x.threads, x.batch) == key}
        first = next(iter(row.values()))
        best = next(x for x in fastest if (x.dsp, x.backend, x.threads, x.batch) == key)
        faster = (f"DSP by {best.ratio:.2f}x" if best.ratio > 1
                  else f"{names.get(best.baseline, best.baseline)} by {1 / best.ratio:.2f}x")
        body.append([key[0], key[1], str(key[2]), str(key[3]), f"{first.dsp_ms:.3f}",
                     *[f"{row[b].ratio:.2f}" if b in row else "-" for b in baselines], faster])
    return lines + _table(header, body)


def _skips(result: CompareResult) -> list[str]:
    """One line per (backend, reason): which variants it left unmeasured."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in result.rows:
        if not r.ok:
            names = grouped.setdefault((r.backend, r.reason or "?"), [])
            if r.variant not in names:
                names.append(r.variant)
    return [f"- {backend} ({', '.join(names)}): {reason}" for (backend, reason), names in grouped.items()]


def _machine(result: CompareResult) -> str:
    m, v = result.machine, result.versions
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    return f"{m.get('cpu', '?')}, {m.get('logical_cores', '?')} logical cores, GPU: {m.get('gpu') or 'none'}; {libs}"


def render_markdown(result: CompareResult, plots: tuple[tuple[str, str], ...] = PLOTS) -> str:
    cfg: dict[str, Any] = result.config
    load = result.load
    timing = f"{cfg.get('runs')} timed runs" if cfg.get("runs") else f"{cfg.get('time_budget')} s of runs"
    if cfg.get("runs_by_batch"):
        timing += " (" + ", ".join(f"batch {b}: {r}" for b, r in cfg["runs_by_batch"]) + ")"
    timing += f" after {cfg.get('warmup')} warm-up runs per batch size"
    lines = [
        f"# {result.title}", "",
        f"- Command: `{result.command}`",
        f"- Source: {result.source}",
        f"- Created: {result.created} ({result.seconds:.0f} s in all)",
        f"- Machine: {_machine(result)}",
        f"- Load average (1/5/15 min) before / after timing: {load.get('loadavg_before')} / "
        f"{load.get('loadavg_after')}",
        f"- Timing: {timing}; all variants of a backend timed interleaved (one run of each per round), "
        "median and p90 in ms. Speedup = dense median / variant median; efficiency = speedup / FLOPs ratio "
        "(1.0: latency fell as much as FLOPs).",
        "", "## Variants", "",
        "FLOPs are multiply-accumulates of all convs and the classifier for one image (whole model); the DSP "
        "convention counts only the convs inside residual blocks. Baselines are pruned to the DSP variant's "
        "whole-model MACs (within 1%). *MMACs the ONNX executes* counts the exported graph's Conv/Gemm work "
        "(padding and zero rows a lowering keeps included). Weights are not fine-tuned here: this compares "
        "latency, not accuracy.", "",
    ]
    lines += variants_table(result)
    lines += ["", "## Latency", *latency_tables(result)]
    lines += ["", "## Where DSP wins and where channel pruning wins", "", *verdict_lines(result)]
    heads = headline_rows(result)
    if heads:
        lines += ["", "## Headline", "", *[f"- {h}" for h in heads]]
    if cfg.get("match") == "latency":
        from dsp_deploy.compare.match_latency import latency_match_lines

        lines += latency_match_lines(result.variants)
    skips = _skips(result)
    if skips:
        lines += ["", "## Not measured", "", *skips]
    lines += ["", "## Plots", ""]
    lines += [f"![{title}]({name})" for name, title in plots]
    return "\n".join(lines) + "\n"


def write_report(result: CompareResult, folder: str | Path) -> None:
    """``results.json``, ``results.csv`` and ``report.md`` into ``folder`` (each atomically)."""
    folder = Path(folder)
    write_results_json(result, folder / "results.json")
    write_text_atomic(folder / "results.csv", results_csv_text(result))
    write_text_atomic(folder / "report.md", render_markdown(result))


__all__ = ["render_markdown", "verdict_summary", "write_report"]
