"""`finetune` stage: train a pruned checkpoint with its structure enforced.

Output ``F.pt`` appears only when the run has finished. Until then the resumable state lives
next to it in ``F.resume.pt`` (written atomically every epoch, removed at the end) and the
metrics in ``F.metrics.jsonl``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.errors import DataError, ModelError, TrainingError, UsageError
from dsp_deploy.training import common
from dsp_deploy.training.recipe import load_recipe, stage_settings
from dsp_deploy.utils.atomic import remove_stale_temps

log = logging.getLogger(__name__)


@dataclass
class FinetuneOptions(common.RunSettings):
    checkpoint: str
    data: str
    out: str
    section: str = "finetune"  # recipe section with the loop settings ("scratch", "scp_finetune" ...)


def side_files(out: str) -> tuple[Path, Path]:
    """(resume state, metrics) paths that belong to output ``out``."""
    path = Path(out)
    stem = path.name[:-3] if path.name.endswith(".pt") else path.name
    return path.with_name(f"{stem}.resume.pt"), path.with_name(f"{stem}.metrics.jsonl")


def check_input_shape(info: Any, structure: Any, source: str) -> None:
    """DataError unless the dataset's images have the channels and size the model was built for."""
    want = (structure.in_channels, *structure.input_size)
    if tuple(info.input_shape) != want:
        raise DataError(f"dataset '{info.name}' has {'x'.join(map(str, info.input_shape))} images but {source} "
                        f"takes {'x'.join(map(str, want))}")


def run_finetune(opts: FinetuneOptions) -> dict[str, Any]:
    """Fine-tune; returns a summary (accuracy before/after, files, structure fingerprint per rank)."""
    from dsp_deploy.checkpoint import Checkpoint, build_model, load_checkpoint, provenance, save_checkpoint
    from dsp_deploy.models import get_config
    from dsp_deploy.structure.validate import topology_for
    from dsp_deploy.training.data import check_data, loaders_from_settings
    from dsp_deploy.training.distributed import init_distributed, shutdown
    from dsp_deploy.training.loop import LoopConfig, Trainer, evaluate
    from dsp_deploy.training.masking import MaskHook, StructureMasks
    from dsp_deploy.training.metrics import MetricsLog

    recipe = load_recipe(opts.recipe)
    settings = stage_settings(recipe, opts.section, opts.overrides)
    data_cfg = stage_settings(recipe, "data", opts.data_overrides)
    common.check_loop_settings(settings)
    source = common.resolve_checkpoint_arg(opts.checkpoint)
    ckpt = load_checkpoint(source)
    if recipe["model"] and recipe["model"] != ckpt.model:
        raise ModelError(f"{source} is a {ckpt.model} checkpoint but the recipe is for {recipe['model']}")
    info = check_data(opts.data)
    if info.num_classes != ckpt.num_classes:
        raise DataError(f"dataset '{opts.data}' has {info.num_classes} classes but {source} predicts "
                        f"{ckpt.num_classes}")
    check_input_shape(info, ckpt.structure, source)
    if os.path.isdir(opts.out):
        raise UsageError(f"--out {opts.out} is a folder; fine-tuning writes one checkpoint file")
    resume_path, metrics_path = side_files(opts.out)
    previous = None
    if opts.resume:
        if not resume_path.is_file():
            raise UsageError(f"--resume: no interrupted fine-tune to continue ({resume_path} not found)")
        previous = load_checkpoint(resume_path)
        for path in (resume_path, Path(opts.out)):  # temp files of the killed run (its only writer)
            remove_stale_temps(path)
        if common.structure_fingerprint(previous.structure) != common.structure_fingerprint(ckpt.structure):
            raise TrainingError(f"--resume: {resume_path} was fine-tuning another structure than {source}")
    elif resume_path.exists():
        raise UsageError(f"an interrupted fine-tune of {opts.out} exists ({resume_path}); pass --resume to "
                         "continue it or delete that file")
    model = build_model(previous or ckpt).train()
    topo = topology_for(ckpt.structure)
    dppnet = get_config(ckpt.model).is_dppnet
    if dppnet:  # DPPNet fine-tuning: the learned pattern masks are fixed from here on
        from dsp_deploy.dppnet.training import FrozenPatternHook, check_frozen
        from dsp_deploy.models.dpp import freeze_patterns

        freeze_patterns(model)

    ctx = init_distributed(opts.device)
    try:
        common.seed_everything(opts.seed)
        loaders = loaders_from_settings(opts.data, ctx, data_cfg, opts.seed)
        model.to(ctx.device)
        masks = StructureMasks(model, ckpt.structure, topo)
        masks.apply()
        before = previous.metadata.get("val_accuracy_before") if previous else None
        if before is None:
            before = evaluate(model, loaders.val, ctx)["accuracy"]
        metrics = MetricsLog(metrics_path, enabled=ctx.is_main, fresh=previous is None)
        loop_cfg = LoopConfig(settings["epochs"], settings["lr"], settings["momentum"], settings["weight_decay"],
                              settings.get("iterations"), settings.get("warmup_epochs", 0.0), opts.checkpoint_every,
                              progress=opts.progress,
                              eval_each_epoch=opts.eval_each_epoch, stage="finetune")
        meta = provenance(stage="finetune", source=source, data=opts.data, dataset=info.to_dict(),
                          settings=settings, seed=opts.seed, world_size=ctx.world_size, val_accuracy_before=before)
        meta["source_metadata"] = ckpt.metadata

        meta["structure_sha256_per_rank"] = ctx.gather_objects(common.structure_fingerprint(ckpt.structure))

        def save(state: dict[str, Any], final: bool) -> None:
            _check_masks(model, masks)
            if dppnet:
                check_frozen(model)
            fields = {"val_accuracy": trainer.last_val["accuracy"]} if final and trainer.last_val else {}
            out = Checkpoint(ckpt.model, model.state_dict(), ckpt.structure, dict(ckpt.config), dict(meta, **fields),
                             {"stage": "finetune", "complete": final, "resume": None if final else state})
            save_checkpoint(opts.out if final else resume_path, out)
            if final and resume_path.exists():
                resume_path.unlink()

        hook = FrozenPatternHook() if dppnet else MaskHook(masks)
        trainer = Trainer(model, ctx, loaders.train, loaders.val, loop_cfg, hook=hook, save=save,
                          metrics=metrics)
        if previous is not None:
            trainer.restore(previous.extra.get("resume") or {})
            metrics.log("resume", stage="finetune", step=trainer.global_step)
        else:
            metrics.log("start", stage="finetune", val_accuracy=before)
        result = trainer.run()
        _check_masks(model, masks)
        fingerprints = ctx.gather_objects(common.structure_fingerprint(ckpt.structure))
        return {"checkpoint": opts.out, "metrics": str(metrics_path), "source": source,
                "val_accuracy_before": before, "val_accuracy": result["val_accuracy"], "epochs": result["epochs"],
                "steps": result["steps"], "time_s": result["time_s"], "world_size": ctx.world_size, "rank": ctx.rank,
                "structure_sha256_per_rank": fingerprints, "resumed": previous is not None}
    finally:
        shutdown(ctx)


def _check_masks(model: Any, masks: Any) -> None:
    """TrainingError if any pruned weight or pruned filter's BN parameter is not exactly zero."""
    names = {id(p): n for n, p in model.named_parameters()}
    for param, mask in masks.masks:
        if bool((param.detach() * (1 - mask)).abs().sum() > 0):
            raise TrainingError(f"pruned entries of '{names[id(param)]}' became non-zero")
