"""`train --method dsp|l1|pfs|scp --flops-reduction R`: every pruning method as one resumable run.

Each method is three stages that write into the run folder RUN:

=======  =============================  ==================================  =========================
method   1. RUN/search/checkpoint.pt    2. RUN/pruned.pt (G=1 / G groups)   3. RUN/final.pt
=======  =============================  ==================================  =========================
dsp      group learning (`train`)       group channel pruning (`prune`)     fine-tuning ``finetune``
l1       dense training (``pretrain``)  L1-norm channel pruning             fine-tuning ``finetune``
pfs      gate search, frozen weights    channels from the gates, re-init    from scratch ``scratch``
scp      soft-mask training ``scp``     delta threshold + FLOPs target      fine-tuning ``scp_finetune``
=======  =============================  ==================================  =========================

The channel methods share `ChannelPruner`'s bisection; DSP uses its own threshold search. Every
stage runs through the shared loop (resumable with ``--resume``, DistributedDataParallel under
torchrun); a finished stage is skipped when a run is resumed. The summary gives the final
checkpoint, its FLOPs reduction (both conventions) and its validation and test accuracy.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.training import common

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("dsp", "l1", "pfs", "scp")
FINAL_SECTION = {"dsp": "finetune", "l1": "finetune", "pfs": "scratch", "scp": "scp_finetune"}


@dataclass
class MethodOptions(common.RunSettings):
    method: str
    data: str
    out: str
    flops_reduction: float | None
    model: str | None = None
    flops_metric: str | None = None
    groups: int | None = None        # dsp: G
    stage_overrides: dict[str, dict[str, Any]] | None = None  # per recipe section (method settings)
    latency: Any = None  # latency_prune.LatencyOptions: prune to a latency budget (dsp, l1; pfs/scp prune stage)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise UsageError(f"unknown method '{method}' (choose from: {', '.join(METHODS)})")


def run_method(opts: MethodOptions) -> dict[str, Any]:
    """Run (or resume) the three stages of ``opts.method``; returns the summary of the final model."""
    check_method(opts.method)
    if opts.latency is None or opts.method in ("pfs", "scp"):  # pfs/scp searches need a FLOPs ratio
        common.check_fraction("--flops-reduction", opts.flops_reduction)
    elif opts.flops_reduction is not None:
        raise UsageError("give one pruning target: --flops-reduction or a latency goal, not both")
    if opts.latency is not None:
        opts.latency.target()  # an unknown or unmeasurable backend fails before training
    from dsp_deploy.models import get_config
    from dsp_deploy.training.data import check_data
    from dsp_deploy.training.distributed import init_distributed, shutdown
    from dsp_deploy.training.recipe import load_recipe

    recipe = load_recipe(opts.recipe)
    model_name = opts.model or recipe["model"]
    if not model_name:
        raise UsageError("no model: pass --model NAME (or a --recipe that names one)")
    metric = opts.flops_metric or recipe["prune"]["flops_metric"] or get_config(model_name).default_flops_metric
    if metric not in ("dsp", "total"):
        raise UsageError(f"--flops-metric must be dsp or total, not '{metric}'")
    info = check_data(opts.data)
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; train writes a run folder")
    final = out / "final.pt"
    if not opts.resume and out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    started = time.time()
    ctx = init_distributed(opts.device)
    try:
        with common.cleanup_on_failure(out, out / "search"):
            search = _search(opts, model_name, metric, out / "search")
        pruned = out / "pruned.pt"
        if not pruned.exists():
            _prune(opts, model_name, metric, search, pruned, ctx)
        ctx.barrier()
        if not final.exists():
            _final_stage(opts, pruned, final)
        return _summary(opts, final, info, metric, ctx, time.time() - started)
    finally:
        shutdown(ctx)


def _overrides(opts: MethodOptions, section: str, **extra: Any) -> dict[str, Any]:
    merged = dict(opts.overrides)
    merged.update((opts.stage_overrides or {}).get(section, {}))
    merged.update({k: v for k, v in extra.items() if v is not None})
    return merged


def _search(opts: MethodOptions, model_name: str, metric: str, folder: Path) -> Path:
    """Stage 1; returns its checkpoint (skipped when a resumed run already finished it)."""
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        from dsp_deploy.checkpoint import load_checkpoint

        if load_checkpoint(ckpt).extra.get("complete"):
            return ckpt
    resume = ckpt.exists()
    if opts.method in ("dsp", "l1"):
        from dsp_deploy.training.learn import TrainOptions, run_train

        dense = opts.method == "l1"
        run_train(TrainOptions(data=opts.data, out=str(folder), model=model_name, dense=dense, recipe=opts.recipe,
                               overrides=_overrides(opts, "pretrain" if dense else "train", groups=opts.groups),
                               data_overrides=opts.data_overrides, seed=opts.seed, device=opts.device,
                               resume=resume, checkpoint_every=opts.checkpoint_every, progress=opts.progress))
    else:
        from dsp_deploy.training.search import SearchOptions, run_search

        run_search(SearchOptions(method=opts.method, data=opts.data, out=str(folder), model=model_name,
                                 flops_reduction=opts.flops_reduction, flops_metric=metric, recipe=opts.recipe,
                                 overrides=_overrides(opts, opts.method), data_overrides=opts.data_overrides,
                                 seed=opts.seed, device=opts.device, resume=resume,
                                 checkpoint_every=opts.checkpoint_every, progress=opts.progress))
    return ckpt


def _prune(opts: MethodOptions, model_name: str, metric: str, search: Path, out: Path, ctx: Any) -> None:
    """Stage 2: the pruned checkpoint at the FLOPs target (written by rank 0)."""
    if opts.method == "dsp":
        from dsp_deploy.training.prune import PruneOptions, prune_checkpoint

        prune_checkpoint(PruneOptions(str(search), str(out), None if opts.latency else opts.flops_reduction, metric,
                                      seed=opts.seed, progress=opts.progress, latency=opts.latency))
        return
    from dsp_deploy.training.search import prune_channels

    checkpoint = prune_channels(opts.method, search, opts.flops_reduction, metric, seed=opts.seed,
                                latency=opts.latency)
    if ctx.is_main:
        from dsp_deploy.checkpoint import save_checkpoint

        save_checkpoint(out, checkpoint)


def _final_stage(opts: MethodOptions, pruned: Path, final: Path) -> None:
    from dsp_deploy.training.finetune import FinetuneOptions, run_finetune, side_files

    section = FINAL_SECTION[opts.method]
    run_finetune(FinetuneOptions(checkpoint=str(pruned), data=opts.data, out=str(final), section=section,
                                 recipe=opts.recipe, overrides=_overrides(opts, section),
                                 data_overrides=opts.data_overrides, seed=opts.seed, device=opts.device,
                                 resume=side_files(str(final))[0].exists(), checkpoint_every=opts.checkpoint_every,
                                 progress=opts.progress))


def accuracy_on_test(checkpoint: Any, spec: str, ctx: Any, batch_size: int = 256) -> float | None:
    """Top-1 accuracy (%) of ``checkpoint`` on the dataset's test split (None if it has none)."""
    from dsp_deploy.checkpoint import build_model
    from dsp_deploy.data import build_dataset, build_loader
    from dsp_deploy.training.loop import evaluate

    test = build_dataset(spec, "test", augment=False, seed=0)
    loader = build_loader(test, batch_size, shuffle=False, workers=0, distributed=ctx.distributed, seed=0,
                          drop_last=False)
    return evaluate(build_model(checkpoint).to(ctx.device), loader, ctx)["accuracy"]


def _summary(opts: MethodOptions, final: Path, info: Any, metric: str, ctx: Any, seconds: float) -> dict[str, Any]:
    from dsp_deploy.checkpoint import load_checkpoint
    from dsp_deploy.structure import count_costs

    ckpt = load_checkpoint(final)
    costs = count_costs(ckpt.structure)
    return {"checkpoint": str(final), "method": opts.method, "model": ckpt.model, "dataset": info.name,
            "flops_metric": metric,
            "target_pct": round(100 * opts.flops_reduction, 4) if opts.flops_reduction is not None else None,
            "latency": load_checkpoint(final.parent / "pruned.pt").metadata.get("latency") if opts.latency else None,
            "reduction_pct": costs.reduction_pct(metric), "flops_reduction_pct": costs.flops_reduction_pct,
            "dsp_flops_reduction_pct": costs.dsp_flops_reduction_pct, "groups": ckpt.structure.max_groups,
            "val_accuracy": ckpt.metadata.get("val_accuracy"), "test_accuracy": accuracy_on_test(ckpt, opts.data, ctx),
            "time_s": seconds, "rank": ctx.rank, "world_size": ctx.world_size}
