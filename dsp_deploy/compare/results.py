"""Comparison results: variants (FLOPs, params, lowering), latency rows with speedup vs dense and
efficiency, their JSON/CSV files, and the verdicts and headline lines drawn from them.

*Speedup vs dense* = dense median / variant median at the same backend, threads and batch.
*Efficiency* = speedup / (dense FLOPs / variant FLOPs): 1.0 means latency fell as much as FLOPs.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dsp_deploy.bench.results import ResultRow
from dsp_deploy.errors import BenchError
from dsp_deploy.utils.atomic import write_text_atomic
from dsp_deploy.utils.jsonfile import DocFormat

# results.json of a compare report; the first releases wrote {"format": "dsp-deploy-compare", "version": 1}.
COMPARE_FORMAT = DocFormat("compare-results", 1, "dsp-deploy compare results file",
                           old_names=("dsp-deploy-compare",), old_version_keys=("version",))
CSV_COLUMNS = ("model", "variant", "method", "groups", "backend", "threads", "batch", "status", "flops", "params",
               "flops_reduction_pct", "dsp_flops_reduction_pct", "runs", "median_ms", "p90_ms", "p99_ms", "mean_ms",
               "min_ms", "throughput", "speedup_vs_dense", "efficiency", "lowering", "reason")


@dataclass
class VariantInfo:
    """One model variant of a comparison (what it is, its cost, how it was exported)."""

    name: str
    method: str                 # "dense", "dsp", "l1-channel", "torch-pruning"
    label: str
    groups: int
    flops: int
    params: int
    dense_flops: int
    dense_params: int
    flops_reduction_pct: float
    dsp_flops_reduction_pct: float | None
    params_reduction_pct: float
    matched_to: str | None = None        # the DSP variant whose FLOPs this baseline matches
    flops_match_pct: float | None = None  # 100 * (flops - matched flops) / matched flops
    lowering: str = ""
    onnx_flops: int | None = None         # MACs the exported graph executes (padding, zero rows included)
    movement_ops: dict[str, int] = field(default_factory=dict)  # Gather/Pad/Slice/Concat... node counts
    lowering_plan: dict[str, str] = field(default_factory=dict)
    exporter: str = ""
    onnx: str | None = None
    export_seconds: float | None = None
    parity_max_abs_diff: float | None = None
    status: str = "ok"
    reason: str = ""
    notes: str = ""
    matched_by: str = "flops"             # "latency" when pruned to the DSP variant's measured latency
    latency_match_pct: float | None = None  # its measured latency vs the DSP variant's, during matching

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def flops_ratio(self) -> float:
        """Dense FLOPs / variant FLOPs (the speedup FLOPs promise)."""
        return self.dense_flops / self.flops if self.flops else float("nan")


@dataclass
class CompareRow(ResultRow):
    """A bench row joined with its variant's costs, and its speedup vs dense and efficiency (filled by
    ``add_speedups``). ``machine``/``versions`` stay empty: the result records them once."""

    model: str = ""
    method: str = ""
    label: str = ""
    groups: int = 1
    flops: int = 0
    params: int = 0
    flops_reduction_pct: float = 0.0
    dsp_flops_reduction_pct: float | None = None
    lowering: str = ""
    speedup_vs_dense: float | None = None
    efficiency: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["machine"], data["versions"]
        return data


@dataclass
class CompareResult:
    """Everything a report is made from."""

    model: str
    title: str
    source: str
    config: dict[str, Any]
    variants: list[VariantInfo]
    rows: list[CompareRow]
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    created: str = ""
    seconds: float = 0.0

    def variant(self, name: str) -> VariantInfo:
        for v in self.variants:
            if v.name == name:
                return v
        raise BenchError(f"no variant '{name}' in the results")

    def ok_rows(self) -> list[CompareRow]:
        return [r for r in self.rows if r.ok and r.median_ms]

    def settings(self) -> list[tuple[str, int]]:
        """(backend, threads) pairs in first-seen order."""
        return list(dict.fromkeys((r.backend, r.threads) for r in self.rows))

    def batches(self) -> list[int]:
        return sorted({r.batch for r in self.rows})

    def to_dict(self) -> dict[str, Any]:
        return {**COMPARE_FORMAT.header(), "created": self.created, "model": self.model,
                "title": self.title, "source": self.source, "command": self.command, "seconds": self.seconds,
                "config": self.config, "machine": self.machine, "versions": self.versions, "load": self.load,
                "variants": [asdict(v) for v in self.variants], "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CompareResult:
        known = {f.name for f in fields(VariantInfo)}
        try:
            variants = [VariantInfo(**{k: v for k, v in item.items() if k in known}) for item in doc["variants"]]
            rows = [CompareRow.from_dict(r) for r in doc["rows"]]
            return cls(str(doc["model"]), str(doc.get("title", "")), str(doc.get("source", "")),
                       dict(doc.get("config") or {}), variants, rows, dict(doc.get("machine") or {}),
                       dict(doc.get("versions") or {}), dict(doc.get("load") or {}), str(doc.get("command", "")),
                       str(doc.get("created", "")), float(doc.get("seconds", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise BenchError(f"malformed compare results ({type(exc).__name__}: {exc})") from None


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_row(bench_row: ResultRow, variant: VariantInfo, model: str) -> CompareRow:
    """A bench row joined with its variant's costs; speedups are added later."""
    data = {f.name: getattr(bench_row, f.name) for f in fields(ResultRow) if f.name not in ("machine", "versions")}
    dsp_reduction = variant.dsp_flops_reduction_pct
    return CompareRow(**data, model=model, method=variant.method, label=variant.label, groups=variant.groups,
                      flops=variant.flops, params=variant.params,
                      flops_reduction_pct=round(variant.flops_reduction_pct, 3),
                      dsp_flops_reduction_pct=None if dsp_reduction is None else round(dsp_reduction, 3),
                      lowering=variant.lowering)


def add_speedups(rows: list[CompareRow], variants: Sequence[VariantInfo], dense: str = "dense") -> None:
    """Fill ``speedup_vs_dense`` and ``efficiency`` in place (None where dense or the row is missing)."""
    by_name = {v.name: v for v in variants}
    base = {(r.backend, r.threads, r.batch): r.median_ms for r in rows if r.variant == dense and r.ok and r.median_ms}
    for r in rows:
        r.speedup_vs_dense = r.efficiency = None
        ref = base.get((r.backend, r.threads, r.batch))
        if not r.ok or not r.median_ms or ref is None:
            continue
        speedup = ref / r.median_ms
        r.speedup_vs_dense = round(speedup, 4)
        ratio = by_name[r.variant].flops_ratio if r.variant in by_name else float("nan")
        r.efficiency = round(speedup / ratio, 4) if ratio == ratio and ratio > 0 else None


def write_results_json(result: CompareResult, path: str | Path) -> None:
    write_text_atomic(path, json.dumps(result.to_dict(), indent=1) + "\n")


def results_csv_text(result: CompareResult) -> str:
    """One CSV line per row (no raw samples)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({k: ("" if getattr(row, k) is None else getattr(row, k)) for k in CSV_COLUMNS})
    return buffer.getvalue()


def read_results(path: str | Path) -> CompareResult:
    """A results.json written by ``write_results_json`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    return CompareResult.from_dict(COMPARE_FORMAT.read(path, BenchError))


@dataclass(frozen=True)
class Verdict:
    """DSP against the fastest channel-pruned baseline at one setting; ``ratio`` > 1: DSP is faster."""

    dsp: str
    baseline: str
    backend: str
    threads: int
    batch: int
    dsp_ms: float
    baseline_ms: float
    dsp_speedup: float | None
    baseline_speedup: float | None

    @property
    def ratio(self) -> float:
        return self.baseline_ms / self.dsp_ms

    @property
    def winner(self) -> str:
        return "dsp" if self.ratio > 1.0 else "channel"


def _rows_at(result: CompareResult) -> dict[tuple[str, str, int, int], CompareRow]:
    return {(r.variant, r.backend, r.threads, r.batch): r for r in result.ok_rows()}


def verdicts(result: CompareResult, *, each: bool = False) -> list[Verdict]:
    """For each DSP variant and setting, DSP vs the fastest baseline matched to it (``each``: one
    verdict per matched baseline instead)."""
    rows = _rows_at(result)
    out = []
    for dsp in (v for v in result.variants if v.method == "dsp" and v.ok):
        baselines = [v.name for v in result.variants
                     if v.matched_to == dsp.name and v.ok and v.method != "dppnet"]  # channel pruning only
        for backend, threads in result.settings():
            for batch in result.batches():
                mine = rows.get((dsp.name, backend, threads, batch))
                theirs = [rows[k] for k in ((b, backend, threads, batch) for b in baselines) if k in rows]
                if not mine or not theirs:
                    continue
                chosen = theirs if each else [min(theirs, key=lambda r: r.median_ms)]
                out += [Verdict(dsp.name, r.variant, backend, threads, batch, mine.median_ms, r.median_ms,
                                mine.speedup_vs_dense, r.speedup_vs_dense) for r in chosen]
    return out


def _fmt_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def headline_rows(results: CompareResult | str | Path) -> list[str]:
    """Short lines for a summary: per DSP variant and backend/threads, the speedup vs dense of DSP
    and of each matched baseline at every batch size, and who is faster by how much."""
    result = results if isinstance(results, CompareResult) else read_results(results)
    rows = _rows_at(result)
    batches = result.batches()
    lines = []
    for dsp in (v for v in result.variants if v.method == "dsp" and v.ok):
        group = [dsp] + [v for v in result.variants if v.matched_to == dsp.name and v.ok]
        for backend, threads in result.settings():
            parts = []
            for v in group:
                speeds = [getattr(rows.get((v.name, backend, threads, b)), "speedup_vs_dense", None) for b in batches]
                if all(s is None for s in speeds):
                    continue
                parts.append(f"{v.label} {'/'.join('-' if s is None else f'{s:.2f}' for s in speeds)}x")
            if not parts:
                continue
            mine = [x for x in verdicts(result) if x.dsp == dsp.name and x.backend == backend and x.threads == threads]
            tail = ""
            if mine:
                lo, hi = min(x.ratio for x in mine), max(x.ratio for x in mine)
                span = f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}x..{hi:.2f}x"
                tail = (f"; DSP vs best channel-pruned: {span} "
                        f"({'DSP faster' if lo > 1 else 'channel pruning faster' if hi < 1 else 'mixed'})")
            lines.append(f"{result.model} {dsp.label} (-{dsp.flops_reduction_pct:.0f}% FLOPs), {backend} "
                         f"{threads}t, speedup vs dense at batch {'/'.join(map(str, batches))}: "
                         + "; ".join(parts) + tail)
    return lines


def summary_counts(items: Iterable[Verdict]) -> tuple[int, int]:
    """(settings where DSP is faster, settings where channel pruning is faster)."""
    items = list(items)
    return sum(v.ratio > 1 for v in items), sum(v.ratio <= 1 for v in items)
