"""The ImageNet ESTIMATE for ResNet-50: x = latency measured here on structures our pruners build at
the FLOPs of each published result, y = the top-1 that method's authors published at that FLOPs.

Structure and accuracy come from different sources: the structures are pruned from random weights
(latency depends on the structure only), the accuracies are the papers'. It is an estimate of where
each published model would sit on this machine, not a measurement of its accuracy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """A published ImageNet ResNet-50 result."""

    method: str  # "dense", "dsp" (G=2) or "channel"
    label: str
    flops_pruned_pct: float
    top1: float
    citation: str
    verified: bool  # checked against the source text in the session that added it


PUBLISHED: tuple[Published, ...] = (
    Published(
        "dense",
        "ResNet-50 (dense)",
        0.0,
        76.13,
        "torchvision ResNet50_Weights.IMAGENET1K_V1 documentation (acc@1 76.13)",
        False,
    ),
    Published(
        "dsp", "DSP G=2", 70.00, 76.54, "irishev/DSP README, ImageNet table, ResNet50 (g=2) row (commit 9bafcef)", True
    ),
    Published(
        "dsp", "DSP G=2", 80.03, 75.45, "irishev/DSP README, ImageNet table, ResNet50 (g=2) row (commit 9bafcef)", True
    ),
    Published(
        "dsp", "DSP G=2", 90.02, 73.29, "irishev/DSP README, ImageNet table, ResNet50 (g=2) row (commit 9bafcef)", True
    ),
    Published(
        "channel",
        "SCP",
        54.3,
        75.27,
        "Kang & Han, Operation-aware Soft Channel Pruning using Differentiable Masks, ICML 2020, "
        "ImageNet ResNet-50 table (their baseline 75.89); the ICML table itself was not readable here: "
        "the same row (75.27 top-1, 54.30% FLOPs, -0.62) is quoted in Table 3 of Polarization of "
        "Probabilistic Channelwise Soft Masks, Comput. Intell. Neurosci. 2022, article 7775419",
        False,
    ),
)
NOT_INCLUDED = (
    "Pruning from Scratch (Wang et al., AAAI 2020): no point. Its ImageNet ResNet-50 figures are not in "
    "the seeds nor in the authors' README (frankwang345/pruning-from-scratch, commit 3102332: commands "
    "only), and the paper's tables could not be read from here, so no unchecked figure is shown"
)


def _structures(seed: int = 0) -> list[tuple[Published, Any]]:
    """(published point, checkpoint) per point: dense, one-shot DSP G=2 and L1 channel (inner) structures."""
    import torch

    from dsp_deploy.baselines import l1_channel_prune
    from dsp_deploy.checkpoint import Checkpoint, dense_checkpoint
    from dsp_deploy.compare.variants import _one_shot
    from dsp_deploy.models import create
    from dsp_deploy.structure.validate import topology_for

    torch.manual_seed(seed)
    dense = dense_checkpoint("resnet50", create("resnet50").eval(), source=f"random init (seed {seed})")
    topo = topology_for(dense.structure)
    from dsp_deploy.structure import count_costs

    dense_flops = count_costs(dense.structure, topo).dense_flops
    out = []
    for point in PUBLISHED:
        ratio = point.flops_pruned_pct / 100.0
        if point.method == "dense":
            out.append((point, dense))
        elif point.method == "dsp":
            out.append((point, _one_shot(dense, 2, ratio, "dsp", seed)))  # 90.02% is out of reach whole-model
        else:
            result = l1_channel_prune(topo, dense.state_dict, int(dense_flops * (1 - ratio)), prune_streams=False)
            out.append((point, Checkpoint("resnet50", dict(dense.state_dict), result.structure, {}, {})))
    return out


CONVENTION = (
    "DSP points: the published % read in the DSP convention (block convs; 90.02% whole-model is out of "
    "reach for ResNet-50), channel point: whole-model; the table also gives our structure's whole-model %"
)


def _current_citations(est: dict[str, Any]) -> dict[str, Any]:
    """``est`` with each point's citation and check mark taken from ``PUBLISHED`` (matched by method and
    published FLOPs): a source found after the timing updates the report without re-measuring."""
    current = {(p.method, p.flops_pruned_pct): p for p in PUBLISHED}
    for point in est.get("points", []):
        known = current.get((point.get("method"), point.get("flops_pruned_pct")))
        if known is not None:
            point.update(citation=known.citation, verified=known.verified)
    est["not_included"] = NOT_INCLUDED
    return est


def imagenet_estimate(cache: Path, *, runs: int = 10, quick: bool = False) -> dict[str, Any]:
    """Measure every structure at batch 1 (ORT CPU, 1 thread, interleaved); returns the table rows."""
    import json

    from dsp_deploy.bench import run_benchmark
    from dsp_deploy.bench.variants import Variant
    from dsp_deploy.compare.latency_match import export_checkpoint
    from dsp_deploy.frontier.runner import fingerprint
    from dsp_deploy.structure import count_costs
    from dsp_deploy.utils.atomic import write_text_atomic

    started = time.perf_counter()
    folder = cache / "imagenet-resnet50"
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "estimate.json"
    if done.exists():  # measured before (a resumed run): reuse it (imagenet_markdown updates the citations)
        try:
            return json.loads(done.read_text())
        except ValueError:
            pass
    variants, costs = [], {}
    for i, (point, ckpt) in enumerate(_structures()):
        name = f"{point.method}-{point.flops_pruned_pct:g}"
        path = folder / f"{name}.onnx"
        if not path.exists():
            export_checkpoint(ckpt, path, cache_path=str(folder / "plan-cache.json"), plan_runs=3, plan_batches=(1,))
        variants.append(Variant(name, path, "onnx"))
        costs[name] = count_costs(ckpt.structure)
    rows = run_benchmark(variants, ["ort-cpu"], [1], threads=1, runs=max(3, runs), warmup=2, progress=False)
    by = {r.variant: r.median_ms for r in rows}
    dense_ms = by["dense-0"]
    points = []
    for point, variant in zip(PUBLISHED, variants):
        c = costs[variant.name]
        points.append(
            {
                **asdict(point),
                "structure_flops": c.flops,
                "structure_flops_pruned_pct": round(c.flops_reduction_pct, 2),
                "latency_ms_b1": round(by[variant.name], 3),
                "speedup_b1": round(dense_ms / by[variant.name], 3),
            }
        )
    est = {
        "model": "resnet50",
        "batch": 1,
        "runs": max(3, runs),
        "machine": fingerprint(),
        "quick": quick,
        "points": points,
        "not_included": NOT_INCLUDED,
        "seconds": round(time.perf_counter() - started, 1),
        "structures": "dense: random-init ResNet-50; DSP: one-shot G=2 group pruning (`prune --groups 2`) at the "
        "published FLOPs reduction, exported with --lowering auto; channel: our L1 "
        "channel pruner (block-inner channels) at the published FLOPs, as the channel structure",
    }
    write_text_atomic(done, json.dumps(est, indent=1))
    return est


def imagenet_markdown(est: dict[str, Any], out: Path) -> list[str]:
    """The report section (and ``imagenet_estimate.png`` in ``out``); ``est``'s citations are brought up to
    date in place, so the results document written after it carries them too."""
    est = _current_citations(est)
    from dsp_deploy.compare.plots import _pyplot, _save

    out.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for method, color in (("dense", "#555555"), ("dsp", "#d62728"), ("channel", "#1f77b4")):
        pts = [p for p in est["points"] if p["method"] == method]
        if pts:
            ax.plot(
                [p["latency_ms_b1"] for p in pts],
                [p["top1"] for p in pts],
                marker="o",
                color=color,
                label=pts[0]["label"] + ("" if all(p["verified"] for p in pts) else " (unverified figure)"),
            )
    ax.set_xlabel(f"latency measured here, batch 1 (ms; ORT CPU 1 thread, {est['machine']['isa']})")
    ax.set_ylabel("PUBLISHED ImageNet top-1 (%)")
    ax.set_title(
        "ResNet-50 ImageNet ESTIMATE: published accuracy vs latency of our structures\n"
        "(structure and accuracy from different sources)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out / "imagenet_estimate.png")
    plt.close(fig)
    lines = [
        "## ImageNet ResNet-50: an ESTIMATE (structure and accuracy from different sources)",
        "",
        "x: latency measured on this machine on structures built by our pruners at the FLOPs of each published "
        "result; y: the top-1 the method's authors published at that FLOPs. Not a measurement of accuracy.",
        f"Structures: {est['structures']}. {CONVENTION}. Batch 1, {est['runs']} interleaved runs, median.",
        "",
        "| method | FLOPs pruned (published) | whole-model FLOPs pruned (our structure) | latency b=1 ms | speedup | "
        "published top-1 | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in est["points"]:
        mark = "" if p["verified"] else " (not verified against the source in this session)"
        lines.append(
            f"| {p['label']} | {p['flops_pruned_pct']:.2f}% | {p['structure_flops_pruned_pct']:.2f}% | "
            f"{p['latency_ms_b1']:.1f} | {p['speedup_b1']:.2f}x | {p['top1']:.2f} | {p['citation']}{mark} |"
        )
    lines += ["", f"- {est['not_included']}", "", "![imagenet_estimate.png](imagenet_estimate.png)"]
    return lines
