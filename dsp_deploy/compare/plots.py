"""PNG plots of a comparison (matplotlib, Agg backend, imported lazily):

* ``latency_vs_flops.png``: one panel per batch size, median latency against MMACs, colour = method,
  marker = backend/threads;
* ``speedup_vs_batch.png``: one panel per backend/threads, speedup vs dense against batch size per
  variant (one line style per DSP target), with each FLOPs ratio (the speedup FLOPs promise) dotted.
"""
from __future__ import annotations

import logging
from pathlib import Path

from dsp_deploy.compare.results import CompareResult
from dsp_deploy.errors import BenchError
from dsp_deploy.utils.atomic import atomic_path

log = logging.getLogger(__name__)

COLORS = {"dense": "#555555", "dsp": "#d62728", "l1-channel": "#1f77b4", "torch-pruning": "#2ca02c"}
INNER_COLOR = "#9467bd"  # L1 channel pruning of block-inner channels only
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STYLES = ("-", "--", ":", "-.")


def _color(method: str, label: str) -> str:
    return INNER_COLOR if "inner" in label else COLORS.get(method, "black")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BenchError(f"plots need matplotlib (pip install 'dsp-deploy[plot]'): {exc}") from None
    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_latency_vs_flops(result: CompareResult, path: Path) -> None:
    plt = _pyplot()
    rows = result.ok_rows()
    batches = result.batches()
    settings = list(dict.fromkeys((r.backend, r.threads) for r in rows))
    fig, axes = plt.subplots(1, len(batches), figsize=(4.6 * len(batches), 3.8), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        for s_index, (backend, threads) in enumerate(settings):
            for label in dict.fromkeys(r.label for r in rows):
                pts = [(r.flops / 1e6, r.median_ms) for r in rows if r.batch == batch and
                       r.backend == backend and r.threads == threads and r.label == label]
                method = next(r.method for r in rows if r.label == label)
                if pts:
                    ax.scatter(*zip(*pts), color=_color(method, label), marker=MARKERS[s_index % len(MARKERS)],
                               s=36, label=f"{label}, {backend} {threads}t")
        ax.set_title(f"{result.model}, batch {batch}")
        ax.set_xlabel("MMACs per image")
        ax.set_ylabel("median latency (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
                   bbox_to_anchor=(0.5, -0.02 - 0.05 * ((len(labels) - 1) // 4)))
    fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(labels) - 1) // 4), 1, 1))
    _save(fig, path)
    plt.close(fig)


def plot_speedup_vs_batch(result: CompareResult, path: Path) -> None:
    plt = _pyplot()
    rows = result.ok_rows()
    settings = [s for s in result.settings() if any(
        r.backend == s[0] and r.threads == s[1] and r.speedup_vs_dense for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(settings)), figsize=(5.2 * max(1, len(settings)), 3.9), squeeze=False)
    variants = [v for v in result.variants if v.ok and v.method != "dense"]
    groups = list(dict.fromkeys(v.matched_to or v.name for v in variants))  # one line style per DSP target
    for ax, (backend, threads) in zip(axes[0], settings):
        for index, v in enumerate(variants):
            pts = sorted((r.batch, r.speedup_vs_dense) for r in rows if r.variant == v.name and
                         r.backend == backend and r.threads == threads and r.speedup_vs_dense)
            if not pts:
                continue
            color = _color(v.method, v.label)
            style = STYLES[groups.index(v.matched_to or v.name) % len(STYLES)]
            ax.plot(*zip(*pts), marker=MARKERS[index % len(MARKERS)], linestyle=style, color=color,
                    label=f"{v.name} ({v.label})")
            ax.axhline(v.flops_ratio, color="#555555", linestyle=(0, (2, 4)), linewidth=0.8, alpha=0.7)
        ax.axhline(1.0, color="#555555", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(result.batches(), [str(b) for b in result.batches()])
        ax.set_title(f"{result.model}, {backend}, {threads} thread{'s' if threads != 1 else ''}")
        ax.set_xlabel("batch size")
        ax.set_ylabel("speedup vs dense (dotted: FLOPs ratio)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        rows_needed = (len(labels) + 3) // 4
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
        fig.tight_layout(rect=(0, 0.06 * rows_needed + 0.02, 1, 1))
    _save(fig, path)
    plt.close(fig)


def write_plots(result: CompareResult, folder: str | Path) -> list[Path]:
    """Write both plots into ``folder``; returns their paths."""
    folder = Path(folder)
    paths = [folder / "latency_vs_flops.png", folder / "speedup_vs_batch.png"]
    plot_latency_vs_flops(result, paths[0])
    plot_speedup_vs_batch(result, paths[1])
    return paths
