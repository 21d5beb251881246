"""`train` stage: differentiable group learning (or plain dense training with ``dense=True``).

Writes into the run folder ``out``: ``checkpoint.pt`` (every epoch, atomically; the group
logits in ``extra["group_logits"]`` and everything ``--resume`` needs in ``extra["resume"]``;
``extra["complete"]`` is True once the run has finished) and ``metrics.jsonl``. The structure
stays dense: the logits only matter when `prune` turns them into groups.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.errors import CheckpointError, ModelError, UsageError
from dsp_deploy.training import common
from dsp_deploy.training.recipe import load_recipe, stage_settings
from dsp_deploy.utils.atomic import remove_stale_temps

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainOptions(common.RunSettings):
    data: str
    out: str
    model: str | None = None
    dense: bool = False
    init: str | None = None


def _check_settings(settings: dict[str, Any], dense: bool, dppnet: bool = False) -> None:
    common.check_loop_settings(settings)
    if dppnet:
        common.check_positive("alpha", settings["alpha"], allow_zero=True)
    elif not dense:
        common.check_positive("groups", settings["groups"], integer=True)
        common.check_positive("tau", settings["tau"])
        common.check_positive("lambda", settings["lambda"], allow_zero=True)
        common.check_positive("group learning rate", settings["group_lr"])


def _initial_weights(opts: TrainOptions, model_name: str, info: Any) -> dict[str, Any] | None:
    """State dict of ``--init`` (a dense checkpoint of the same model), checked."""
    if opts.init is None:
        return None
    from dsp_deploy.checkpoint import build_model, load_checkpoint

    ckpt = load_checkpoint(common.resolve_checkpoint_arg(opts.init))
    from dsp_deploy.models import get_config

    if get_config(model_name).is_dppnet:
        from dsp_deploy.dppnet.training import dppnet_init_weights

        state = dppnet_init_weights(ckpt, model_name, opts.init)
        if ckpt.num_classes != info.num_classes:
            raise ModelError(f"--init {opts.init} has {ckpt.num_classes} classes but the dataset has "
                             f"{info.num_classes}")
        return state
    if ckpt.model != model_name:
        raise ModelError(f"--init {opts.init} is a {ckpt.model} checkpoint, not {model_name}")
    if not all(layer.is_dense for layer in ckpt.structure.layers):
        raise CheckpointError(f"--init {opts.init} is pruned; group learning starts from a dense model")
    if ckpt.num_classes != info.num_classes:
        raise ModelError(f"--init {opts.init} has {ckpt.num_classes} classes but the dataset has {info.num_classes}")
    from dsp_deploy.training.finetune import check_input_shape

    check_input_shape(info, ckpt.structure, f"--init {opts.init}")
    return build_model(ckpt).state_dict()


def run_train(opts: TrainOptions) -> dict[str, Any]:
    """Run (or resume) the stage; returns a summary with the files written and accuracies."""
    from dsp_deploy.checkpoint import Checkpoint, load_checkpoint, provenance, save_checkpoint
    from dsp_deploy.models import create, get_config, topology
    from dsp_deploy.structure import dense_structure
    from dsp_deploy.training.data import check_data, loaders_from_settings
    from dsp_deploy.training.distributed import init_distributed, shutdown
    from dsp_deploy.training.loop import LoopConfig, Trainer
    from dsp_deploy.training.metrics import MetricsLog

    recipe = load_recipe(opts.recipe)
    model_name = opts.model or recipe["model"]
    if not model_name:
        raise UsageError("no model: pass --model NAME (or a --recipe that names one)")
    dppnet = get_config(model_name).is_dppnet
    if dppnet and opts.dense:
        raise UsageError(f"--dense trains plain ResNets; {model_name} learns its patterns (drop --dense)")
    stage = "pretrain" if opts.dense else ("patterns" if dppnet else "train")
    settings = stage_settings(recipe, stage, opts.overrides)
    data_cfg = stage_settings(recipe, "data", opts.data_overrides)
    _check_settings(settings, opts.dense, dppnet)
    info = check_data(opts.data)
    out = Path(opts.out)
    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / METRICS_NAME
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; the train stage writes a run folder")
    previous = None
    if opts.resume:
        if not ckpt_path.is_file():
            raise UsageError(f"--resume: no {CHECKPOINT_NAME} in {out} to continue from")
        previous = load_checkpoint(ckpt_path)
        remove_stale_temps(ckpt_path)  # a checkpoint write the kill interrupted (this run is its only writer)
        if previous.model != model_name:
            raise ModelError(f"--resume: {ckpt_path} is a {previous.model} run, not {model_name}")
        if previous.extra.get("stage") != stage:
            raise UsageError(f"--resume: {ckpt_path} is a '{previous.extra.get('stage')}' run, not '{stage}' "
                             "(--dense must match the interrupted run)")
        if stage == "train" and previous.extra.get("groups") != settings["groups"]:
            raise UsageError(f"--resume: {ckpt_path} learns {previous.extra.get('groups')} groups, not "
                             f"{settings['groups']}")
        if previous.extra.get("complete"):
            log.info("%s is already complete; nothing to resume", ckpt_path)
            done = {"checkpoint": str(ckpt_path), "metrics": str(metrics_path), "complete": True,
                    "val_accuracy": previous.metadata.get("val_accuracy"), "resumed": False}
            return dict(done, patterns="learned (run already complete)") if dppnet else done
    elif ckpt_path.exists():
        raise UsageError(f"{out} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it "
                         "or choose another --out")
    init_state = _initial_weights(opts, model_name, info)

    ctx = init_distributed(opts.device)
    try:
        common.seed_everything(opts.seed)
        loaders = loaders_from_settings(opts.data, ctx, data_cfg, opts.seed)
        topo = topology(model_name, info.num_classes, info.input_size, info.channels)
        model = create(model_name, num_classes=info.num_classes, in_channels=info.channels)
        source = previous.state_dict if previous is not None else init_state
        if source is not None:
            model.load_state_dict(source)
        loop_cfg = LoopConfig(settings["epochs"], settings["lr"], settings["momentum"], settings["weight_decay"],
                              settings.get("iterations"), settings.get("warmup_epochs", 0.0), opts.checkpoint_every,
                              progress=opts.progress,
                              eval_each_epoch=opts.eval_each_epoch, stage=stage)
        steps = loop_cfg.iterations or loop_cfg.epochs * len(loaders.train)
        learner: Any = None
        if dppnet:
            from dsp_deploy.dppnet.training import PatternSparsityHook

            learner = PatternSparsityHook(settings["alpha"])
        elif not opts.dense:
            from dsp_deploy.training.grouping import GroupLearner

            learner = GroupLearner(topo, settings["groups"], tau=settings["tau"], lam=settings["lambda"],
                                   total_steps=steps, lr=settings["group_lr"], betas=tuple(settings["group_betas"]),
                                   lookahead=settings["lookahead"], seed=opts.seed, dist=ctx, device=ctx.device)
        metrics = MetricsLog(metrics_path, enabled=ctx.is_main, fresh=previous is None)
        method = "dense" if opts.dense else ("dppnet" if dppnet else "group-learning")
        structure = dense_structure(topo, {"method": method})
        meta = provenance(stage=stage, data=opts.data, dataset=info.to_dict(), settings=settings,
                          seed=opts.seed, world_size=ctx.world_size, init=opts.init)

        def save(state: dict[str, Any], final: bool) -> None:
            extra: dict[str, Any] = {"stage": stage, "complete": final, "resume": None if final else state,
                                     "epoch": state["epoch"], "global_step": state["global_step"]}
            if dppnet:
                extra.update(alpha=settings["alpha"])
            elif learner is not None:
                extra.update(group_logits=learner.logits_cpu(), groups=learner.groups,
                             tau=learner.tau, **{"lambda": learner.lam})
            fields = {"val_accuracy": trainer.last_val["accuracy"]} if final and trainer.last_val else {}
            save_checkpoint(ckpt_path, Checkpoint(model_name, model.state_dict(), structure,
                                                  {"data": opts.data}, dict(meta, **fields), extra))

        trainer = Trainer(model, ctx, loaders.train, loaders.val, loop_cfg, hook=learner, save=save, metrics=metrics)
        if previous is not None:
            trainer.restore(previous.extra.get("resume") or {})
            metrics.log("resume", stage=stage, step=trainer.global_step)
        with common.cleanup_on_failure(out, ckpt_path):
            if learner is not None and not dppnet:
                learner.sync()
                _assert_same_logits(ctx, learner)
            result = trainer.run()
            if learner is not None and not dppnet:
                _assert_same_logits(ctx, learner)
        summary = {"checkpoint": str(ckpt_path), "metrics": str(metrics_path), "complete": True,
                   "val_accuracy": result["val_accuracy"], "epochs": result["epochs"], "steps": result["steps"],
                   "time_s": result["time_s"], "world_size": ctx.world_size, "rank": ctx.rank,
                   "resumed": previous is not None}
        if learner is not None and not dppnet:
            summary["groups"] = learner.groups
        if dppnet:
            from dsp_deploy.models.dpp import dpp_convs

            union = [int((c.pattern_scores() > 0).any(dim=0).sum()) for _, c in dpp_convs(model)]
            summary["patterns"] = f"union taps per DPP conv: mean {sum(union) / len(union):.2f} of 9"
        return summary
    finally:
        shutdown(ctx)


def _assert_same_logits(ctx: Any, learner: Any) -> None:
    import hashlib

    from dsp_deploy.errors import TrainingError

    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in learner.logits_cpu().values())).hexdigest()
    digests = ctx.gather_objects(digest)
    if len(set(digests)) != 1:
        raise TrainingError(f"group logits differ between ranks ({len(set(digests))} distinct values)")
