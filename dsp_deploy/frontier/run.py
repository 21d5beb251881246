"""One accuracy-at-latency run: every (model, seed, method, budget) row, trained or taken from the cache,
gathered into the results document the report is made from."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsp_deploy.frontier import JSON_FORMAT, JSON_VERSION
from dsp_deploy.frontier.dppnet_probe import METHOD as DPPNET
from dsp_deploy.frontier.dppnet_probe import dppnet_rows, probe_row
from dsp_deploy.frontier.runner import (
    Runner,
    cached_result,
    fingerprint,
    fmt_ms,
    row_base,
    skip_reason,
    skipped_rows,
)
from dsp_deploy.frontier.settings import LATENCY_TARGETED, NO_FLOPS_ROW, SHAPED, RunSettings

log = logging.getLogger(__name__)

NOT_CACHED = "not trained yet (report written from the cache only)"


def _timed_stage(fn: Any, *args: Any) -> tuple[Path, float]:
    """Run a stage; (its checkpoint, seconds it took when first trained, kept next to it)."""
    started = time.perf_counter()
    ckpt = fn(*args)
    note = Path(ckpt).parent / f"{Path(ckpt).stem}.train_seconds"
    if not note.exists():
        note.write_text(f"{time.perf_counter() - started:.2f}")
    return ckpt, float(note.read_text())


class ModelSeedRun:
    """The rows of one model and seed."""

    def __init__(self, runner: Runner, model: str, seed: int) -> None:
        from dsp_deploy.compare.latency_match import OnnxMeasurer, export_checkpoint

        self.runner, self.model, self.seed = runner, model, seed
        self.base = runner.folder(model, seed)
        s = runner.settings
        self.dense_ckpt, self.dense_seconds = _timed_stage(runner.dense, model, seed)
        dense_onnx = self.base / "dense.onnx"
        if not dense_onnx.exists():
            from dsp_deploy.checkpoint import load_checkpoint

            export_checkpoint(load_checkpoint(self.dense_ckpt), dense_onnx)
        plan_cache = str(runner.plan_cache())

        def exporter(candidate: Any, path: Path) -> None:
            export_checkpoint(
                candidate, path, cache_path=plan_cache, plan_runs=s.plan_runs, plan_batches=s.plan_batches or s.batches
            )

        self.measurer = OnnxMeasurer(
            dense_onnx, self.base / "onnx", tuple(s.batches), threads=1, runs=s.runs, exporter=exporter,
            min_seconds=s.min_seconds, stat=s.stat,
        )
        self.matched_ratio: dict[float, float] = {}  # budget -> L1's latency-matched ratio (seeds PFS/SCP)
        self.curves: dict[str, list[tuple[float, float]]] = {}  # method -> measured (ratio, speedup) so far

    def dense_row(self) -> dict[str, Any]:
        def produce() -> dict[str, Any]:
            from dsp_deploy.checkpoint import load_checkpoint
            from dsp_deploy.structure import count_costs

            latency, dense = self.measurer.time_files(self.measurer.dense_onnx)
            costs = count_costs(load_checkpoint(self.dense_ckpt).structure)
            row = row_base(self.model, "dense", self.seed, "dense", 1.0)
            row.update(
                flops=costs.flops,
                params=costs.params,
                flops_reduction_pct=0.0,
                latency_ms=fmt_ms(dense),
                dense_ms=fmt_ms(dense),
                speedup={str(b): 1.0 for b in dense},
                test_accuracy=self.runner.test_accuracy(self.dense_ckpt),
                train_seconds=self.dense_seconds,
                machine=fingerprint(),
            )
            return row

        return cached_result(self.base / "dense" / "result.json", produce)[0]

    def row(self, method: str, kind: str, speedup: float, cached_only: bool = False) -> tuple[dict[str, Any], bool]:
        folder = self.base / method / f"{kind}-{speedup:g}"
        if cached_only and not (folder / "result.json").exists():
            row = row_base(self.model, method, self.seed, kind, speedup)
            row.update(status="skipped", reason=NOT_CACHED)
            return row, False
        row, cached = cached_result(folder / "result.json", lambda: self._produce(method, kind, speedup, folder))
        if method == "l1" and kind == "latency" and row.get("status") == "ok":
            self.matched_ratio[speedup] = float(row["ratio"])
        self._learn_curve(method, kind, speedup, row)
        return row, cached

    def _one_source(self, method: str) -> bool:
        """Whether every budget of ``method`` prunes the same checkpoint, so that its measured points lie
        on one latency curve (PFS/SCP search anew per budget unless the run shares one search)."""
        return method in ("l1", *SHAPED) or method.startswith("dsp-g") or self.runner.settings.shared_search

    def _learn_curve(self, method: str, kind: str, speedup: float, row: dict[str, Any]) -> None:
        """Keep the (ratio, speedup at the match batch) points a row measured: the latency matches of the
        method's later budgets start from them (``match_ratio``'s ``prior``) instead of from scratch."""
        if row.get("status") != "ok" or method in LATENCY_TARGETED or not self._one_source(method):
            return
        if kind == "flops":
            points = [(row.get("ratio"), (row.get("speedup") or {}).get(str(self.runner.settings.match_batch)))]
        else:
            steps = (row.get("match") or {}).get("steps", [])
            points = [(st["ratio"], speedup / (1 + st["error_pct"] / 100)) for st in steps
                      if math.isfinite(st.get("error_pct", math.nan))]
        self.curves.setdefault(method, []).extend(
            (float(r), float(v)) for r, v in points if r is not None and v is not None)

    def _pruned_to_latency(self, method: str, source: Path, target: Any) -> tuple[Any, Any]:
        """(MatchResult of one step, checkpoint): a latency-targeted method prunes to ``target`` once by
        its latency table and its own measured corrections (no run-level ratio search); measured again like
        every row."""
        from dsp_deploy.compare.latency_match import MatchResult
        from dsp_deploy.structure import count_costs

        pruned = self.runner.prune_to_latency(method, source, self.model, target, self.seed)
        costs = count_costs(pruned.structure)
        point = self.measurer.measure(pruned, round(costs.flops_reduction_pct / 100, 6), costs.flops, costs.params)
        err = point.error(target)
        step = {"ratio": point.ratio, "error_pct": round(100 * err, 3), "latency_ms": point.latency_ms[target.batch]}
        converged = abs(err) <= target.tolerance
        reason = "" if converged else (
            f"pruned by the latency table and measured corrections: measured {point.speedup(target.batch):.2f}x, "
            f"not within {100 * target.tolerance:g}% of the budget"
        )
        return MatchResult(target, point, converged, [step], reason), pruned

    def _produce(self, method: str, kind: str, speedup: float, folder: Path) -> dict[str, Any]:
        from dsp_deploy.compare.latency_match import LatencyTarget, Measurement, costs_of, match_latency

        r, s = self.runner, self.runner.settings
        flops_ratio = 1.0 - 1.0 / speedup
        start = self.matched_ratio.get(speedup, flops_ratio) if kind == "latency" else flops_ratio
        source, search_seconds = _timed_stage(r.stage1, method, self.model, self.seed, start)
        row = row_base(self.model, method, self.seed, kind, speedup)
        started = time.perf_counter()
        staged = folder / "match.json"
        if staged.exists() and (folder / "pruned.pt").exists():  # interrupted during the final stage
            import json

            from dsp_deploy.checkpoint import load_checkpoint

            saved = json.loads(staged.read_text())
            row.update(saved["row"])
            saved["point"].update(
                {k: {int(b): v for b, v in saved["point"][k].items()} for k in ("latency_ms", "dense_ms")}
            )
            point = Measurement(**saved["point"])
            pruned = load_checkpoint(folder / "pruned.pt")
        elif kind == "flops":
            pruned = r.prune(method, source, flops_ratio, self.seed)
            point = self.measurer.measure(pruned, flops_ratio, *costs_of(pruned))
            row.update(ratio=flops_ratio, match=None)
        else:
            target = LatencyTarget(speedup=speedup, batch=s.match_batch)
            if method in LATENCY_TARGETED:  # pruned straight to the budget once, then measured like the others
                from dsp_deploy.errors import TrainingError

                try:
                    result, pruned = self._pruned_to_latency(method, source, target)
                except TrainingError as exc:  # the table says no structure of this method is that fast
                    reason = f"not pruned: its latency table puts the budget out of reach ({exc})"
                    row.update(status="skipped", reason=reason)
                    return row
            else:
                result, pruned = match_latency(
                    lambda ratio: r.prune(method, source, ratio, self.seed),
                    self.measurer,
                    target,
                    start=start,
                    max_steps=s.match_steps,
                    prior=self.curves.get(method, ()),
                )
            point = result.best
            row.update(
                ratio=point.ratio,
                match=result.to_dict(),
                match_error_pct=round(100 * point.error(target), 2),
                converged=result.converged,
            )
            if not result.converged:
                row["reason"] = result.reason
        match_seconds = time.perf_counter() - started
        if not staged.exists():
            import json
            from dataclasses import asdict

            from dsp_deploy.utils.atomic import write_text_atomic

            folder.mkdir(parents=True, exist_ok=True)
            done = {k: row[k] for k in ("ratio", "match", "match_error_pct", "converged", "reason") if k in row}
            point_dict = {k: v for k, v in asdict(point).items() if k != "extra"}
            write_text_atomic(staged, json.dumps({"row": done, "point": point_dict}))
        t0 = time.perf_counter()
        final = r.final(method, pruned, folder, self.seed)
        from dsp_deploy.checkpoint import load_checkpoint
        from dsp_deploy.structure import count_costs

        costs = count_costs(load_checkpoint(final).structure)
        row.update(
            flops=costs.flops,
            params=costs.params,
            flops_reduction_pct=round(costs.flops_reduction_pct, 3),
            latency_ms=fmt_ms(point.latency_ms),
            dense_ms=fmt_ms(point.dense_ms),
            speedup={str(b): round(point.speedup(b), 4) for b in point.latency_ms},
            test_accuracy=r.test_accuracy(final),
            train_seconds=round(search_seconds + time.perf_counter() - t0, 2),
            match_seconds=round(match_seconds, 2),
            machine=fingerprint(),
        )
        return row


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (None: unchanged) for the block, then restored."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_rows(runner: Runner, rows: list[dict[str, Any]], cached_only: bool) -> int:
    """Append every row of the run to ``rows``; returns how many came from the cache."""
    settings, reused = runner.settings, 0
    for model in settings.models:
        for seed in settings.seeds:
            if cached_only and not (runner.folder(model, seed) / "dense" / "result.json").exists():
                reason = NOT_CACHED  # building the run would train and time its dense model
                rows += [{**row_base(model, "dense", seed, "dense", 1.0), "status": "skipped", "reason": reason}]
                for method in settings.methods:
                    rows += skipped_rows(model, seed, settings, method, reason)
                continue
            run = ModelSeedRun(runner, model, seed)
            rows.append(run.dense_row())
            for method in settings.methods:
                if method == DPPNET and (not cached_only or (run.base / DPPNET / "probe.json").exists()):
                    rows += dppnet_rows(probe_row(run), settings)  # measured: which budgets it can reach
                    continue
                reason = skip_reason(method)
                if reason is not None:
                    rows += skipped_rows(model, seed, settings, method, reason)
                    continue
                if method in LATENCY_TARGETED:
                    rows += skipped_rows(model, seed, settings, method, NO_FLOPS_ROW, kinds=("flops",))
                for kind in ("latency",) if method in LATENCY_TARGETED else ("flops", "latency"):
                    for speedup in settings.speedups:
                        log.info("%s seed %d: %s at %s %gx", model, seed, method, kind, speedup)
                        row, cached = run.row(method, kind, speedup, cached_only)
                        reused += cached
                        rows.append(row)
    return reused


def run_all(
    settings: RunSettings,
    cache: Path,
    *,
    progress: bool = False,
    command: str = "",
    data_note: str = "",
    cached_only: bool = False,
) -> dict[str, Any]:
    """Every row of the run (cached ones reused); returns the results document."""
    from dsp_deploy.compare.pipeline import _load

    started = time.perf_counter()
    load_before = _load()
    rows: list[dict[str, Any]] = []
    with _torch_threads(settings.train_threads):
        reused = _run_rows(Runner(settings, cache, progress), rows, cached_only)
    return {
        "format": JSON_FORMAT,
        "format_version": JSON_VERSION,
        "budget": settings.budget,
        "quick": settings.quick,
        "command": command,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": fingerprint(),
        "settings": _settings_dict(settings),
        "data_note": data_note,
        "training_budget": settings.training_budget(),
        "rows": rows,
        "reused_rows": reused,
        "load": {"loadavg_before": load_before, "loadavg_after": _load(), "cores": os.cpu_count()},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def _settings_dict(settings: RunSettings) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
