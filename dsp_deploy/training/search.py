"""Stage 1 and 2 of the channel-pruning methods of the seeds (`pfs`, `scp`) and the pruned
checkpoint of every channel method (`l1`, `pfs`, `scp`): see `dsp_deploy.training.methods`.

``run_search`` writes a run folder like `train` (``checkpoint.pt`` every epoch, resumable;
``metrics.jsonl``): PFS keeps its gates in the state_dict (``pfs_gates.*``) and in
``extra["gates"]``; SCP's state is the trained model (its keep probabilities are its BatchNorms).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.errors import TrainingError, UsageError
from dsp_deploy.training import common
from dsp_deploy.training.recipe import load_recipe, stage_settings

log = logging.getLogger(__name__)


@dataclass
class SearchOptions(common.RunSettings):
    method: str
    data: str
    out: str
    model: str
    flops_reduction: float
    flops_metric: str


def check_reachable(topo: Any, reduction: float, metric: str) -> None:
    """TrainingError before any training if removing every prunable channel cannot reach the target."""
    from dsp_deploy.baselines import ChannelPruner
    from dsp_deploy.training.pfs import inner_convs

    pruner = ChannelPruner(topo, {("filter", s.name): [1.0] * s.out_channels for s in inner_convs(topo)},
                           normalize=False, metric=metric)
    floor = pruner.flops_for(pruner.units)[0]
    best = 100.0 * (1 - floor / pruner.dense_cost())
    if best < 100.0 * reduction - 1.0:
        raise TrainingError(f"a {100 * reduction:.1f}% FLOPs reduction ({metric} convention) is out of reach for "
                            f"channel pruning of {topo.model}: removing every prunable channel gives {best:.1f}%")


def run_search(opts: SearchOptions) -> dict[str, Any]:
    """PFS gate search or SCP soft-mask training; resumable; writes ``opts.out/checkpoint.pt``."""
    import torch

    from dsp_deploy.checkpoint import Checkpoint, load_checkpoint, provenance, save_checkpoint
    from dsp_deploy.models import create, topology
    from dsp_deploy.structure import dense_structure
    from dsp_deploy.training.data import check_data, loaders_from_settings
    from dsp_deploy.training.distributed import init_distributed, shutdown
    from dsp_deploy.training.loop import LoopConfig, Trainer
    from dsp_deploy.training.metrics import MetricsLog

    recipe = load_recipe(opts.recipe)
    settings = stage_settings(recipe, opts.method, opts.overrides)
    data_cfg = stage_settings(recipe, "data", opts.data_overrides)
    common.check_loop_settings(settings)
    info = check_data(opts.data)
    topo = topology(opts.model, info.num_classes, info.input_size, info.channels)
    check_reachable(topo, opts.flops_reduction, opts.flops_metric)
    out = Path(opts.out)
    ckpt_path = out / "checkpoint.pt"
    previous = load_checkpoint(ckpt_path) if opts.resume and ckpt_path.exists() else None
    ctx = init_distributed(opts.device)
    try:
        common.seed_everything(opts.seed)
        loaders = loaders_from_settings(opts.data, ctx, data_cfg, opts.seed)
        extra_meta: dict[str, Any] = {}
        if opts.method == "pfs":
            from dsp_deploy.training.pfs import ChannelGates, GateSearchHook, freeze_weights

            common.check_positive("gamma", settings["gamma"], allow_zero=True)
            common.check_positive("gate learning rate", settings["gate_lr"])
            width = float(settings["width_multiplier"])
            model = create(opts.model, info.num_classes, in_channels=info.channels, width_multiplier=width)
            gates = ChannelGates(model, topo)
            gates.attach(model)
            freeze_weights(model)
            hook: Any = GateSearchHook(gates, lr=settings["gate_lr"], gamma=settings["gamma"],
                                       ratio=1.0 - opts.flops_reduction)
            extra_meta = {"width_multiplier": width, "gamma": settings["gamma"]}
        elif opts.method == "scp":
            from dsp_deploy.training.scp import FlopsTargetHook, SoftMasks

            common.check_positive("tau", settings["tau"])
            common.check_fraction("delta", settings["delta"])
            model = create(opts.model, info.num_classes, in_channels=info.channels)
            masks = SoftMasks(model, topo, tau=settings["tau"], delta=settings["delta"],
                              generator=torch.Generator().manual_seed(opts.seed))
            hook = FlopsTargetHook(masks, topo, lam=settings["lambda"], reduction=opts.flops_reduction,
                                   metric=opts.flops_metric)
            extra_meta = {"tau": settings["tau"], "delta": settings["delta"]}
        else:
            raise UsageError(f"no structure search for method '{opts.method}'")
        if previous is not None:
            model.load_state_dict(previous.state_dict)
        structure = dense_structure(topo, {"method": opts.method, "stage": "search"})
        meta = provenance(stage=f"{opts.method}-search", data=opts.data, dataset=info.to_dict(), settings=settings,
                          seed=opts.seed, world_size=ctx.world_size, flops_reduction=opts.flops_reduction,
                          flops_metric=opts.flops_metric, **extra_meta)
        loop_cfg = LoopConfig(settings["epochs"], settings["lr"], settings["momentum"], settings["weight_decay"],
                              settings.get("iterations"), settings.get("warmup_epochs", 0.0), opts.checkpoint_every,
                              progress=opts.progress, eval_each_epoch=opts.eval_each_epoch,
                              stage=f"{opts.method}-search")

        def save(state: dict[str, Any], final: bool) -> None:
            extra = {"stage": f"{opts.method}-search", "complete": final, "resume": None if final else state,
                     "method": opts.method, **extra_meta}
            if opts.method == "pfs":
                extra["gates"] = gates.values()
            save_checkpoint(ckpt_path, Checkpoint(opts.model, model.state_dict(), structure, {"data": opts.data},
                                                  meta, extra))

        trainer = Trainer(model, ctx, loaders.train, loaders.val, loop_cfg, hook=hook, save=save,
                          metrics=MetricsLog(out / "metrics.jsonl", enabled=ctx.is_main, fresh=previous is None))
        if previous is not None:
            trainer.restore(previous.extra.get("resume") or {})
        with common.cleanup_on_failure(out, ckpt_path):
            result = trainer.run()
        return {"checkpoint": str(ckpt_path), "val_accuracy": result["val_accuracy"], "rank": ctx.rank}
    finally:
        shutdown(ctx)


def prune_channels(method: str, search: Path, reduction: float | None, metric: str, *, seed: int,
                   latency: Any = None, prune_streams: bool = True) -> Any:
    """The pruned G=1 checkpoint of ``method`` ('l1', 'pfs' or 'scp') from its stage-1 checkpoint, at
    the FLOPs ``reduction`` or, with ``latency`` (`latency_prune.LatencyOptions`), at its latency goal
    (the same ChannelPruner search with predicted latency as the cost). ``prune_streams=False``: L1
    keeps the residual-stream channels and prunes block-inner ones only."""
    import torch

    from dsp_deploy.baselines import ChannelPruner, L1ChannelPruner
    from dsp_deploy.checkpoint import Checkpoint, load_checkpoint, provenance
    from dsp_deploy.models import create
    from dsp_deploy.structure import count_costs
    from dsp_deploy.structure.masks import apply_structure
    from dsp_deploy.structure.validate import topology_for

    ckpt = load_checkpoint(search)
    topo = topology_for(ckpt.structure)
    meta: dict[str, Any] = {"method": method, "flops_metric": metric}
    if latency is None:
        meta["target_flops_reduction_pct"] = round(100 * float(reduction), 4)  # type: ignore[arg-type]
    else:
        meta["latency_goal"] = latency.goal.describe()
    state = {k: v for k, v in ckpt.state_dict.items() if not k.startswith("pfs_gates.")}
    extra: dict[str, Any] = {}
    record = None
    if method == "l1":
        pruner = L1ChannelPruner(topo, state, metadata=meta, metric=metric, prune_streams=prune_streams)
        structure, record = _channel_structure(pruner, reduction, latency, state)
    elif method == "pfs":
        from dsp_deploy.training.pfs import gate_scores

        pruner = ChannelPruner(topo, gate_scores(topo, ckpt.extra["gates"]), normalize=False, metadata=meta,
                               metric=metric)
        torch.manual_seed(seed + 1)  # the pruned network is trained from scratch: fresh random weights
        state = create(ckpt.model, ckpt.num_classes, in_channels=ckpt.structure.in_channels).state_dict()
        structure, record = _channel_structure(pruner, reduction, latency, state)
    elif method == "scp" and latency is not None:
        from dsp_deploy.training.pfs import inner_convs
        from dsp_deploy.training.scp import keep_probability, probability_scores

        probs = {s.name: keep_probability(state[f"{s.bn}.weight"], state[f"{s.bn}.bias"]) for s in inner_convs(topo)}
        pruner = ChannelPruner(topo, probability_scores(probs), normalize=False, metadata=meta, metric=metric)
        structure, record = _channel_structure(pruner, reduction, latency, state)
    elif method == "scp":
        structure, extra = scp_structure(topo, state, reduction, metric, meta,
                                         float(ckpt.extra.get("delta", 0.05)))
    else:
        raise UsageError(f"no channel pruning for method '{method}'")
    model = create(ckpt.model, ckpt.num_classes, in_channels=ckpt.structure.in_channels)
    model.load_state_dict(state)
    apply_structure(model, structure, topo)
    costs = count_costs(structure, topo)
    if record is not None:
        meta["latency"] = record
    log.info("%s: %.2f%% FLOPs reduction (%s convention), target %s", method, costs.reduction_pct(metric),
             metric, latency.goal.describe() if latency is not None else f"{100 * float(reduction):.1f}%")
    return Checkpoint(ckpt.model, model.state_dict(), structure, dict(ckpt.config),
                      provenance(stage="prune", source=str(search), reduction_pct=costs.reduction_pct(metric), **meta),
                      {"stage": "prune", "complete": True, **extra})


def _channel_structure(pruner: Any, reduction: float | None, latency: Any, state: Any) -> tuple[Any, Any]:
    """(structure, latency record or None): the shared search at the FLOPs reduction or the latency goal."""
    if latency is None:
        return pruner.match_reduction(float(reduction)).structure, None  # type: ignore[arg-type]
    from dsp_deploy.training.latency_prune import channels_to_budget

    budgeted = channels_to_budget(latency, pruner, state)
    return budgeted.structure, budgeted.record


def scp_structure(topo: Any, state: dict[str, Any], reduction: float, metric: str, meta: dict[str, Any],
                  delta: float) -> tuple[Any, dict[str, Any]]:
    """SCP's structure: the channels below ``delta`` go; when that misses the FLOPs target by more
    than the tolerance, the shared bisection over the keep-probability ranking lands on it."""
    from dsp_deploy.baselines import DEFAULT_TOLERANCE, ChannelPruner
    from dsp_deploy.training.pfs import inner_convs
    from dsp_deploy.training.scp import below_delta, keep_probability, probability_scores

    probs = {s.name: keep_probability(state[f"{s.bn}.weight"], state[f"{s.bn}.bias"]) for s in inner_convs(topo)}
    pruner = ChannelPruner(topo, probability_scores(probs), normalize=False, metadata=meta, metric=metric)
    removed = below_delta(probs, delta)
    target = pruner.dense_cost() * (1.0 - reduction)
    by_delta = [u for u in pruner.units if u.index in removed[u.where]]
    cost, structure = pruner.flops_for(by_delta)
    rule = "delta"
    if abs(cost - target) > DEFAULT_TOLERANCE * target:
        structure, rule = pruner.match_reduction(reduction).structure, "delta+flops-target"
    return structure, {"scp": {"below_delta": sum(len(v) for v in removed.values()), "rule": rule}}
