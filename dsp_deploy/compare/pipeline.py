"""`run_compare`: build dense / DSP / channel-pruned variants at matched FLOPs, export each, benchmark
them interleaved per backend, thread count and batch size, and write the report folder atomically:
``results.json``, ``results.csv``, ``report.md``, PNG plots (and ``models/`` unless not kept).
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsp_deploy.bench import run_benchmark
from dsp_deploy.bench.results import ResultRow
from dsp_deploy.bench.variants import Variant
from dsp_deploy.compare.artifacts import Artifacts, make_artifacts
from dsp_deploy.compare.config import CompareConfig
from dsp_deploy.compare.plots import write_plots
from dsp_deploy.compare.report import write_report
from dsp_deploy.compare.results import CompareResult, CompareRow, VariantInfo, add_speedups, make_row, now_utc
from dsp_deploy.compare.variants import BuiltVariant, build_variants
from dsp_deploy.runtime import registry
from dsp_deploy.structure.validate import topology_for
from dsp_deploy.utils.atomic import atomic_directory
from dsp_deploy.utils.machine import library_versions, machine_info, usable_cores

log = logging.getLogger(__name__)

KIND_OF_BACKEND = {b.name: b.kinds[0] for b in registry.BACKENDS.values()}  # the file compare builds per backend
CPU_BACKENDS = tuple(b.name for b in registry.BACKENDS.values() if b.device == "cpu")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _skipped(info: VariantInfo, backend: str, threads: int, batch: int, reason: str, model: str) -> CompareRow:
    row = ResultRow(variant=info.name, path="", backend=backend, batch=batch, status="skipped", reason=reason,
                    threads=threads, device="cpu" if backend in CPU_BACKENDS else "cuda")
    return make_row(row, info, model)


def _settings(config: CompareConfig, threads_list: Sequence[int]) -> list[tuple[int, str, list[str], bool]]:
    """(threads, file kind, backends, cuda_graphs) runs to do. GPU backends run once (thread count moot);
    torch-cuda runs eager and again as CUDA-graph replays."""
    plan = []
    for threads in threads_list:
        for kind in ("onnx", "torchscript", "engine"):
            backends = [b for b in config.backends if KIND_OF_BACKEND[b] == kind
                        and (b in CPU_BACKENDS or threads == threads_list[0])]
            if backends:
                plan.append((threads, kind, backends, False))
            if kind == "torchscript" and "torch-cuda" in backends:
                plan.append((threads, kind, ["torch-cuda"], True))
    return plan


def benchmark(config: CompareConfig, built: Sequence[BuiltVariant], artifacts: Artifacts, model: str,
              progress: bool | None = None) -> tuple[list[CompareRow], dict[str, Any], dict[str, Any]]:
    """Rows for every variant x backend x threads x batch (skipped ones with the reason), plus the
    machine and library versions. Per batch size, all variants with a file of one kind are timed
    interleaved in one ``run_benchmark`` call (so the runs may differ per batch)."""
    infos = {b.info.name: b.info for b in built}
    rows: list[CompareRow] = []
    for threads, kind, backends, graphs in _settings(config, config.threads or (usable_cores(),)):
        rename = {"torch-cuda": "torch-cuda+graphs"} if graphs else {}
        variants = [Variant(n, artifacts.files[n][kind], kind) for n in infos if kind in artifacts.files.get(n, {})]
        timed = {v.name for v in variants}
        for batch in config.batches:
            if variants:
                for r in run_benchmark(variants, backends, [batch], threads=threads, runs=config.runs_at(batch),
                                       warmup=config.warmup, time_budget=config.time_budget, seed=config.seed,
                                       cuda_graphs=graphs, progress=progress):
                    row = make_row(r, infos[r.variant], model)
                    row.backend = rename.get(row.backend, row.backend)
                    rows.append(row)
            for name, info in infos.items():
                if name not in timed:
                    reason = info.reason if not info.ok else artifacts.missing.get((name, kind), "no model file")
                    rows += [_skipped(info, rename.get(b, b), threads, batch, reason, model) for b in backends]
    return rows, machine_info(), library_versions()


def _title(config: CompareConfig, model: str, source: str) -> str:
    return config.label or f"{model}: DSP vs channel pruning at matched {config.match} ({source})"


def run_compare(config: CompareConfig, out_dir: str | os.PathLike[str], *, progress: bool | None = None,
                command: str | None = None) -> CompareResult:
    """Run the whole comparison and write the report folder ``out_dir`` (replaced atomically)."""
    config = config.validated()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        built, source = build_variants(config)
        dense = built[0].checkpoint
        assert dense is not None
        model = dense.model
        topo = topology_for(dense.structure)
        input_shape = (topo.in_channels, *topo.input_size)
        with tempfile.TemporaryDirectory(prefix="dsp-compare-models-") as scratch:
            folder = tmp / "models" if config.keep_models else Path(scratch)
            if config.match == "latency":
                from dsp_deploy.compare.match_latency import rematch_latency

                built = rematch_latency(config, built, Path(scratch) / "latency-match")
            artifacts = make_artifacts(built, folder, backends=config.backends, batches=config.batches,
                                       lowering=config.lowering, input_shape=input_shape)
            load_before = _load()
            rows, machine, versions = benchmark(config, built, artifacts, model, progress)
            load_after = _load()
        variants = [b.info for b in built]
        add_speedups(rows, variants)
        result = CompareResult(
            model=model, title=_title(config, model, source), source=source, config=_config_dict(config),
            variants=variants, rows=rows, machine=machine, versions=versions,
            load={"loadavg_before": load_before, "loadavg_after": load_after, "cores": machine.get("logical_cores")},
            command=command or _command_line(), created=now_utc(),
            seconds=round(time.perf_counter() - started, 1))
        write_report(result, tmp)
        write_plots(result, tmp)
    log.info("wrote %s in %.0f s", out_dir, time.perf_counter() - started)
    return result


def _command_line() -> str:
    prog = Path(sys.argv[0]).name
    prog = "python -m dsp_deploy" if prog == "__main__.py" else prog
    return " ".join([prog, *sys.argv[1:]])


def _config_dict(config: CompareConfig) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
