"""Result rows of a benchmark, their text table and their JSON file.

One ``ResultRow`` per (variant, backend, batch). Skipped rows (backend unavailable here) keep
the reason and no timings, so a report shows what was not measured and why.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dsp_deploy.errors import BenchError
from dsp_deploy.utils.atomic import write_text_atomic
from dsp_deploy.utils.jsonfile import DocFormat

# `dsp-deploy bench --json` files; the first releases wrote {"format": "dsp-deploy-bench", "version": 1}.
BENCH_FORMAT = DocFormat("bench-results", 1, "dsp-deploy bench result file", old_names=("dsp-deploy-bench",),
                         old_version_keys=("version",))


@dataclass
class ResultRow:
    """Latency of one variant on one backend at one batch size (times in ms, throughput in samples/s)."""

    variant: str
    path: str
    backend: str
    batch: int
    status: str = "ok"  # 'ok' or 'skipped'
    reason: str = ""
    kind: str = ""
    device: str = "cpu"
    threads: int = 1
    runs: int = 0
    warmup: int = 0
    timing: str = "perf_counter"  # 'perf_counter_sync' (synchronous GPU call) or 'cuda_event'
    cuda_graphs: bool = False
    median_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    throughput: float | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        """Build a row from JSON, ignoring unknown keys (newer files stay readable)."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise BenchError(f"malformed result row: {exc}") from None


def write_json(rows: Sequence[ResultRow], path: str | Path) -> None:
    """Write rows atomically as ``{"format", "format_version", "created", "rows": [...]}``."""
    doc = {
        **BENCH_FORMAT.header(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": [row.to_dict() for row in rows],
    }
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")


def read_json(path: str | Path) -> list[ResultRow]:
    """Rows of a file written by ``write_json``; one-line BenchError if it is not one."""
    doc = BENCH_FORMAT.read(path, BenchError)
    if not isinstance(doc.get("rows"), list):
        raise BenchError(f"{path}: not a dsp-deploy bench result file (no 'rows' list)")
    rows = []
    for i, data in enumerate(doc["rows"]):
        if not isinstance(data, dict):
            raise BenchError(f"{path}: row {i} is a {type(data).__name__}, not a JSON object")
        try:
            rows.append(ResultRow.from_dict(data))
        except BenchError as exc:
            raise BenchError(f"{path}: row {i}: {exc}") from None
    return rows


def describe_machine(rows: Iterable[ResultRow]) -> str:
    """One line naming the machine and library versions of the (first) row."""
    for row in rows:
        m, v = row.machine, row.versions
        gpu = m.get("gpu") or "none"
        libs = ", ".join(f"{k} {val}" for k, val in v.items() if val and k != "python")
        return f"machine: {m.get('cpu', '?')}, {m.get('logical_cores', '?')} logical cores, GPU: {gpu} | {libs}"
    return "machine: (no rows)"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(rows: Sequence[ResultRow], baseline: str | None = None) -> str:
    """Aligned text table; with ``baseline`` (a variant name) a speedup column = baseline median /
    row median at the same backend and batch."""
    if baseline is not None and not any(r.variant == baseline for r in rows):
        names = ", ".join(sorted({r.variant for r in rows}))
        raise BenchError(f"baseline '{baseline}' is not among the variants: {names}")
    base = {(r.backend, r.batch): r.median_ms for r in rows if r.variant == baseline and r.ok}
    header = ["variant", "backend", "batch", "threads", "runs", "median ms", "p90 ms", "p99 ms",
              "mean ms", "min ms", "samples/s"]
    if baseline is not None:
        header.append(f"speedup vs {baseline}")
    table: list[list[str]] = []
    notes: list[str | None] = []
    for r in rows:
        backend = r.backend + ("+graphs" if r.cuda_graphs else "")
        cells = [r.variant, backend, str(r.batch), str(r.threads)]
        if not r.ok:
            table.append(cells)
            notes.append(f"skipped: {r.reason}")
            continue
        cells += [str(r.runs), _fmt(r.median_ms), _fmt(r.p90_ms), _fmt(r.p99_ms), _fmt(r.mean_ms),
                  _fmt(r.min_ms), _fmt(r.throughput, 1)]
        if baseline is not None:
            ref = base.get((r.backend, r.batch))
            cells.append(f"{ref / r.median_ms:.2f}x" if ref and r.median_ms else "-")
        table.append(cells)
        notes.append(None)
    widths = [len(h) for h in header]
    for cells in table:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], len(cell))
    numeric = set(range(2, len(header)))

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for cells, note in zip(table, notes):
        out.append(line(cells) + ("  " + note if note else ""))
    return "\n".join(out)
