"""`dsp-deploy demo`: the whole DSP pipeline on the built-in synthetic dataset in a few minutes
on a laptop CPU: dense ResNet-20 -> group learning -> pruning to 60% fewer FLOPs ->
fine-tuning -> evaluation, ending with a summary of accuracies, FLOPs and files.

The pipeline is the list `DEMO_STEPS`; each step is a function of the shared `DemoState`
that records its results (and files) there, so later stages (export, benchmark) can be
appended without touching the others.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsp_deploy.app.demo_steps import matched_latency_lines, step_export_and_compare

log = logging.getLogger(__name__)


@dataclass
class DemoOptions:
    """Demo settings: sized to finish in a few minutes on 2 CPU cores."""

    out: str = "demo-out"
    data: str = "synthetic"
    model: str = "resnet20"
    groups: int = 4
    flops_reduction: float = 0.6
    dense_epochs: int = 8
    group_epochs: int = 2
    finetune_epochs: int = 4
    match_steps: int = 3      # measured re-prunings of the channel model to DSP's latency (closing table)
    hardware_aware: bool = True  # shape the pruned structure for this machine (prune --hardware-aware)
    target_batch: int = 32    # the batch it is shaped for (the closing table's)
    batch_size: int = 64
    lr: float = 0.05          # dense training (1 warm-up epoch, then cosine)
    group_lr: float = 0.02    # weights during group learning
    finetune_lr: float = 0.02
    lam: float = 2e-3
    tau: float = 0.5
    seed: int = 0
    workers: int = 0
    progress: bool = True
    data_note: str = ""       # which data the demo uses and why (printed with the summary)


DEMO_FASHION_TRAIN = 3000  # Fashion-MNIST training images the demo uses (of 55,000), to stay near ~10 min


def resolve_demo_data(spec: str) -> tuple[str, str]:
    """(dataset spec, note) for ``--data auto``: Fashion-MNIST (installing the Debian package when
    root and apt-get allow) on a 3000-image training subset, else the synthetic set with how to get
    the real one. Other specs pass through."""
    if spec != "auto":
        return spec, f"data: {spec}"
    from dsp_deploy.data.fashion_mnist import ensure_installed

    available, how = ensure_installed()
    if available:
        return (f"fashion-mnist@{DEMO_FASHION_TRAIN}",
                f"data: {how}; training on {DEMO_FASHION_TRAIN} of its 55,000 training images, test = its 10,000")
    return "synthetic", f"data: built-in SYNTHETIC images (accuracies are not real-world); {how}"


@dataclass
class DemoState:
    options: DemoOptions
    out: Path
    files: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    name: str
    description: str
    run: Callable[[DemoState], None]


def _loop(opts: DemoOptions, epochs: int, lr: float, weight_decay: float, warmup: float = 0.0) -> dict[str, Any]:
    return {"epochs": epochs, "lr": lr, "momentum": 0.9, "weight_decay": weight_decay, "warmup_epochs": warmup}


def _data(opts: DemoOptions) -> dict[str, Any]:
    return {"batch_size": opts.batch_size, "workers": opts.workers}


def step_dense(state: DemoState) -> None:
    from dsp_deploy.training.learn import TrainOptions, run_train

    o = state.options
    summary = run_train(TrainOptions(data=o.data, out=str(state.out / "dense"), model=o.model, dense=True,
                                     overrides=_loop(o, o.dense_epochs, o.lr, 5e-4, warmup=1.0),
                                     data_overrides=_data(o),
                                     seed=o.seed, device="cpu", progress=o.progress, eval_each_epoch=False))
    state.files["dense checkpoint"] = summary["checkpoint"]
    state.results["dense_accuracy"] = summary["val_accuracy"]


def step_group_learning(state: DemoState) -> None:
    from dsp_deploy.training.learn import TrainOptions, run_train

    o = state.options
    overrides = dict(_loop(o, o.group_epochs, o.group_lr, 5e-4), groups=o.groups, tau=o.tau, **{"lambda": o.lam})
    summary = run_train(TrainOptions(data=o.data, out=str(state.out / "dsp"), model=o.model,
                                     init=state.files["dense checkpoint"], overrides=overrides,
                                     data_overrides=_data(o), seed=o.seed, device="cpu", progress=o.progress,
                                     eval_each_epoch=False))
    state.files["group-learned checkpoint"] = summary["checkpoint"]
    state.results["group_learning_accuracy"] = summary["val_accuracy"]


def step_prune(state: DemoState) -> None:
    from dsp_deploy.errors import TrainingError
    from dsp_deploy.training.hardware_prune import HardwareTarget
    from dsp_deploy.training.prune import PruneOptions, prune_checkpoint

    o = state.options
    out = str(state.out / "pruned.pt")
    source = state.files["group-learned checkpoint"]
    try:
        summary = prune_checkpoint(PruneOptions(source, out, o.flops_reduction, progress=o.progress,
                                                hardware=HardwareTarget(batch=o.target_batch) if o.hardware_aware
                                                else None))
    except TrainingError as exc:  # the shape rules cannot reach the FLOPs target here: prune by FLOPs alone
        log.warning("pruning shaped for this machine failed (%s); pruning by FLOPs alone", exc)
        summary = prune_checkpoint(PruneOptions(source, out, o.flops_reduction, progress=o.progress))
    state.files["pruned checkpoint"] = out
    state.results["prune"] = summary


def step_finetune(state: DemoState) -> None:
    from dsp_deploy.training.finetune import FinetuneOptions, run_finetune

    o = state.options
    out = str(state.out / "finetuned.pt")
    summary = run_finetune(FinetuneOptions(state.files["pruned checkpoint"], o.data, out,
                                           overrides=_loop(o, o.finetune_epochs, o.finetune_lr, 5e-4),
                                           data_overrides=_data(o), seed=o.seed, device="cpu",
                                           progress=o.progress, eval_each_epoch=False))
    state.files["fine-tuned checkpoint"] = out
    state.files["fine-tune metrics"] = summary["metrics"]
    state.results["pruned_accuracy_before_finetune"] = summary["val_accuracy_before"]


def step_evaluate(state: DemoState) -> None:
    """Reload both saved checkpoints and evaluate them: what was written is what was measured."""
    from dsp_deploy.checkpoint import build_model, load_checkpoint
    from dsp_deploy.checkpoint_info import summarize
    from dsp_deploy.training.data import build_loaders
    from dsp_deploy.training.distributed import DistContext
    from dsp_deploy.training.loop import evaluate

    o = state.options
    ctx = DistContext()
    loaders = build_loaders(o.data, ctx, batch_size=o.batch_size, eval_batch_size=500, workers=o.workers,
                            seed=o.seed)
    from dsp_deploy.training.methods import accuracy_on_test

    for key, label in (("dense", "dense checkpoint"), ("dsp", "fine-tuned checkpoint")):
        ckpt = load_checkpoint(state.files[label])
        info = summarize(ckpt.structure)
        state.results[key] = {
            "accuracy": evaluate(build_model(ckpt), loaders.val, ctx)["accuracy"],
            "test_accuracy": accuracy_on_test(ckpt, o.data, ctx, batch_size=500),
            "flops": info["flops"], "params": info["params"],
            "flops_reduction_pct": info["flops_reduction_pct"],
            "dsp_flops": info["dsp_convention"]["flops"],
            "dsp_flops_reduction_pct": info["dsp_convention"]["flops_reduction_pct"],
            "params_reduction_pct": info["params_reduction_pct"],
        }


DEMO_STEPS: list[DemoStep] = [
    DemoStep("dense", "train a dense model", step_dense),
    DemoStep("group-learning", "DSP differentiable group learning from the dense model", step_group_learning),
    DemoStep("prune", "group channel pruning to the FLOPs target (shaped for this machine unless --flops-only)",
             step_prune),
    DemoStep("finetune", "fine-tune with the structure enforced", step_finetune),
    DemoStep("evaluate", "reload and evaluate the dense and pruned checkpoints", step_evaluate),
    DemoStep("export+bench", "export to ONNX and time dense vs DSP vs channel pruning at matched FLOPs",
             step_export_and_compare),
]

_OUTPUTS = ("dense", "dsp", "pruned.pt", "finetuned.pt", "finetuned.metrics.jsonl", "finetuned.resume.pt")


def run_demo(options: DemoOptions, steps: list[DemoStep] | None = None) -> dict[str, Any]:
    """Run every step; returns the summary (steps with times, accuracies, FLOPs, files)."""
    from dsp_deploy.training import common

    common.check_fraction("--flops-reduction", options.flops_reduction)
    for name in ("dense_epochs", "group_epochs", "finetune_epochs", "match_steps", "groups", "batch_size"):
        common.check_positive(name.replace("_", "-"), getattr(options, name), integer=True)
    out = Path(options.out)
    for name in _OUTPUTS:  # a re-run replaces the previous demo's files
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    state = DemoState(options, out)
    timings = []
    started = time.time()
    for step in steps if steps is not None else DEMO_STEPS:
        log.info("demo step '%s': %s", step.name, step.description)
        t0 = time.time()
        step.run(state)
        timings.append({"name": step.name, "description": step.description, "time_s": round(time.time() - t0, 2)})
    return {"model": options.model, "data": options.data, "data_note": options.data_note, "groups": options.groups,
            "hardware_aware": options.hardware_aware,
            "target_flops_reduction_pct": 100 * options.flops_reduction, "steps": timings,
            "total_time_s": round(time.time() - started, 2), "results": state.results, "files": state.files}


def format_demo_summary(summary: dict[str, Any]) -> str:
    """The table `dsp-deploy demo` prints."""
    res = summary["results"]
    lines = [f"DSP demo: {summary['model']} on '{summary['data']}', G={summary['groups']}, "
             f"target {summary['target_flops_reduction_pct']:.0f}% fewer FLOPs (DSP convention)"]
    if summary.get("data_note"):
        lines.append(f"  {summary['data_note']}")
    shaped = (res.get("prune") or {}).get("hardware")
    if shaped:
        lines.append(f"  pruning shaped for this machine (ONNX Runtime CPU, batch {shaped['target']['batch']}): "
                     f"channel multiple {shaped['channel_multiple']}, {shaped['grouped_layers']} layer(s) kept "
                     f"{summary['groups']} groups, {shaped['one_group_layers']} fell back to one group (their groups "
                     f"cost more than they save here); --flops-only prunes by FLOPs alone")
    lines.append("")
    lines += [f"  {s['name']:<16} {s['time_s']:>7.1f} s  {s['description']}" for s in summary["steps"]]
    lines.append(f"  {'total':<16} {summary['total_time_s']:>7.1f} s")
    if "dense" in res and "dsp" in res:
        d, p = res["dense"], res["dsp"]
        lines += ["", f"  {'':<28}{'dense':>12}{'DSP pruned':>14}",
                  f"  {'accuracy (val)':<28}{d['accuracy']:>11.2f}%{p['accuracy']:>13.2f}%",
                  *([f"  {'accuracy (test)':<28}{d['test_accuracy']:>11.2f}%{p['test_accuracy']:>13.2f}%"]
                    if d.get("test_accuracy") is not None else []),
                  f"  {'FLOPs, block convs (paper)':<28}{d['dsp_flops'] / 1e6:>11.2f}M{p['dsp_flops'] / 1e6:>13.2f}M"
                  f"  (-{p['dsp_flops_reduction_pct']:.1f}%)",
                  f"  {'FLOPs, whole model':<28}{d['flops'] / 1e6:>11.2f}M{p['flops'] / 1e6:>13.2f}M"
                  f"  (-{p['flops_reduction_pct']:.1f}%)",
                  f"  {'parameters':<28}{d['params'] / 1e3:>11.1f}K{p['params'] / 1e3:>13.1f}K"
                  f"  (-{p['params_reduction_pct']:.1f}%)"]
    if res.get("headline"):
        lines += ["", "  latency (ONNX Runtime CPU, speedup vs dense at batch 1/32):"]
        lines += [f"    {line}" for line in res["headline"]]
    width = max((len(k) for k in summary["files"]), default=0)
    lines += ["", "  files:"] + [f"    {k:<{width}}  {v}" for k, v in summary["files"].items()]
    if res.get("matched_latency"):
        lines += ["", *matched_latency_lines(res["matched_latency"])]
    return "\n".join(lines)
