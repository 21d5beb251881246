"""`prune` stage on files: a group-learned (or, with ``groups``, a dense) checkpoint file -> a pruned
checkpoint file whose structure IR holds the groups and kept channels, and whose pruned weights are
zero. The pruning itself is `dsp_deploy.training.dsp_prune.prune_dsp` (in memory); this wrapper
resolves the paths, checks that every torchrun rank computed the same structure and writes the
file on rank 0."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from dsp_deploy.checkpoint import load_checkpoint_or_weights, save_checkpoint
from dsp_deploy.errors import CheckpointError
from dsp_deploy.training import common
from dsp_deploy.training.dsp_prune import DEFAULT_CRITERION, METRICS, DSPPruneOptions, PrunedDSP, prune_dsp

log = logging.getLogger(__name__)

__all__ = ["METRICS", "PruneOptions", "prune_checkpoint", "summary_of"]


@dataclass
class PruneOptions:
    checkpoint: str
    out: str
    flops_reduction: float | None
    flops_metric: str | None = None
    groups: int | None = None
    seed: int = 0
    progress: bool = True
    channel_multiple: int | None = None  # hardware-aligned pruning: per-group counts multiples of N
    latency: Any = None  # latency_prune.LatencyOptions: prune to a latency budget instead of FLOPs
    hardware: Any = None  # hardware_prune.HardwareTarget: shape the FLOPs-targeted structure for that target
    model: str | None = None  # with a plain (torchvision-style) state_dict file: its architecture
    criterion: str = DEFAULT_CRITERION  # weight-importance criterion (dsp_deploy.pruning.criteria)
    recipe: str | None = None  # recipe whose 'prune' section fills what is left None

    def dsp_options(self) -> DSPPruneOptions:
        """The in-memory pruning options, recipe merged in (validated: OptionError naming the field)."""
        return DSPPruneOptions.from_recipe(
            self.recipe, flops_reduction=self.flops_reduction, flops_metric=self.flops_metric, groups=self.groups,
            seed=self.seed, channel_multiple=self.channel_multiple, latency=self.latency, criterion=self.criterion,
            progress=self.progress, hardware=self.hardware)


def summary_of(pruned: PrunedDSP, *, checkpoint: str, source: str, world_size: int = 1,
               rank: int = 0) -> dict[str, Any]:
    """The `prune` summary (CLI table / ``--json``) of an in-memory pruning written to ``checkpoint``."""
    r = asdict(pruned.record)
    keys = ("model", "groups", "grouping", "flops_metric", "target_pct", "reduction_pct", "dsp_flops_reduction_pct",
            "flops_reduction_pct", "params_reduction_pct", "beta", "channel_multiple", "latency", "hardware",
            "time_s", "structure_sha256")
    return {"checkpoint": checkpoint, "source": source, **{k: r[k] for k in keys}, "world_size": world_size,
            "rank": rank}


def prune_checkpoint(opts: PruneOptions) -> dict[str, Any]:
    """Prune to the FLOPs (or latency) target and write ``opts.out`` (rank 0 only under torchrun)."""
    from dsp_deploy.training.distributed import init_distributed, shutdown

    options = opts.dsp_options()
    source = common.resolve_checkpoint_arg(opts.checkpoint)
    for target in (options.latency, options.hardware):
        if target is not None:
            target.target()  # an unknown or unmeasurable backend fails before loading anything
    pruned = prune_dsp(load_checkpoint_or_weights(source, opts.model), options, source=source)
    ctx = init_distributed("cpu")
    try:
        fingerprints = ctx.gather_objects(pruned.record.structure_sha256)
        if len(set(fingerprints)) != 1:
            raise CheckpointError(f"ranks computed different structures ({len(set(fingerprints))} distinct)")
        summary = summary_of(pruned, checkpoint=opts.out, source=source, world_size=ctx.world_size, rank=ctx.rank)
        if ctx.is_main:
            save_checkpoint(opts.out, pruned.checkpoint)
        ctx.barrier()
        return summary
    finally:
        shutdown(ctx)
