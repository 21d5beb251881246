"""PNG plots of an accuracy-at-latency run (matplotlib through compare.plots' lazy Agg import):

* ``accuracy_vs_latency.png``: per model, test accuracy against measured latency (match batch; the dense
  model's latency x the variant/dense ratio timed side by side, so drift between runs cancels), one
  colour per method, every seed's model a dot and each method's Pareto frontier a line;
* ``accuracy_vs_flops.png``: the same against whole-model MFLOPs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsp_deploy.compare.plots import _pyplot, _save
from dsp_deploy.frontier.report import pareto_front

COLORS = {
    "dense": "#555555",
    "dsp-g2": "#d62728",
    "dsp-g4": "#ff7f0e",
    "dsp-latency": "#8c564b",
    "dsp-shaped": "#17becf",
    "l1": "#1f77b4",
    "pfs": "#2ca02c",
    "scp": "#9467bd",
    "dppnet": "#e377c2",
}


def _panel(ax: Any, rows: list[dict[str, Any]], x_of: Any, xlabel: str, title: str) -> None:
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        points = [(x_of(r), float(r["test_accuracy"])) for r in mine]
        color = COLORS.get(method, "black")
        ax.scatter(
            [p[0] for p in points],
            [p[1] for p in points],
            s=18,
            color=color,
            alpha=0.6,
            label=mine[0].get("label", method),
            marker="*" if method == "dense" else "o",
        )
        front = [points[i] for i in pareto_front(points)]
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], color=color, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def write_plots(doc: dict[str, Any], out: Path) -> list[str]:
    """Write both plots; returns their file names."""
    plt = _pyplot()
    batch = str(doc["settings"]["match_batch"])
    rows = [r for r in doc["rows"] if r.get("status") == "ok" and r.get("converged") is not False]
    models = list(dict.fromkeys(r["model"] for r in rows))
    tag = " [QUICK RUN]" if doc.get("quick") else ""
    m = doc["machine"]
    dense = {(r["model"], r["seed"]): float(r["latency_ms"][batch]) for r in rows if r["method"] == "dense"}

    def latency(r: dict[str, Any]) -> float:
        """Drift-corrected: the dense latency x (variant / dense timed in the same run)."""
        ref = dense.get((r["model"], r["seed"]))
        return ref / float(r["speedup"][batch]) if ref else float(r["latency_ms"][batch])

    names = []
    for name, x_of, xlabel in (
        (
            "accuracy_vs_latency.png",
            latency,
            f"measured latency, batch {batch} (ms; dense's x variant/dense timed side by side; ORT CPU 1 thread, "
            f"{m.get('isa')})",
        ),
        ("accuracy_vs_flops.png", lambda r: r["flops"] / 1e6, "whole-model MFLOPs"),
    ):
        fig, axes = plt.subplots(1, max(1, len(models)), figsize=(6.0 * max(1, len(models)), 4.4), squeeze=False)
        for ax, model in zip(axes[0], models):
            _panel(
                ax,
                [r for r in rows if r["model"] == model],
                x_of,
                xlabel,
                f"{model}, {doc['settings']['data']}{tag}\n(lines: Pareto frontier per method)",
            )
        axes[0][0].legend(fontsize=7, loc="lower right")
        _save(fig, out / name)
        plt.close(fig)
        names.append(name)
    return names
