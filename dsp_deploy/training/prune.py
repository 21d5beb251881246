"""`prune` stage: a group-learned (or, with ``groups``, a dense) checkpoint -> a pruned checkpoint
whose structure IR holds the groups and kept channels, and whose pruned weights are zero."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from dsp_deploy.errors import CheckpointError, UsageError
from dsp_deploy.training import common

log = logging.getLogger(__name__)

METRICS = ("dsp", "total")


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
    model: str | None = None  # with a plain (torchvision-style) state_dict file: its architecture


def _assignments(ckpt: Any, topo: Any, groups: int | None, seed: int, source: str) -> tuple[dict[str, Any], int, str]:
    """(filter -> group per conv, G, how the groups were obtained)."""
    from dsp_deploy.training.clustering import one_shot_assignments
    from dsp_deploy.training.pruning import assignments_from_logits
    from dsp_deploy.training.regularizer import prunable_convs

    logits = ckpt.extra.get("group_logits")
    if groups is not None:
        if logits:
            log.warning("--groups %d given: ignoring the group logits learned in %s (one-shot grouping)",
                        groups, source)
        return one_shot_assignments(topo, ckpt.state_dict, groups, seed=seed), groups, "one-shot-clustering"
    if not logits:
        raise UsageError(f"{source} has no learned groups (it is not a `dsp-deploy train` group-learning "
                         "checkpoint); pass --groups G to group its filters one-shot")
    names = {spec.name for spec in prunable_convs(topo)}
    if set(logits) != names:
        missing = sorted(names - set(logits)) or sorted(set(logits) - names)
        raise CheckpointError(f"{source}: group logits do not match {ckpt.model}'s convs (e.g. '{missing[0]}')")
    counts = {int(v.shape[0]) for v in logits.values()}
    if len(counts) != 1:
        raise CheckpointError(f"{source}: group logits have different group counts {sorted(counts)}")
    return assignments_from_logits(logits), counts.pop(), "learned"


def prune_checkpoint(opts: PruneOptions) -> dict[str, Any]:
    """Prune to the FLOPs (or latency) target and write ``opts.out`` (rank 0 only under torchrun)."""
    if opts.latency is None:
        common.check_fraction("--flops-reduction", opts.flops_reduction)
    elif opts.flops_reduction is not None:
        raise UsageError("give one pruning target: --flops-reduction or a latency goal, not both")
    elif opts.channel_multiple is not None:
        opts.latency.channel_multiple = opts.channel_multiple
    if opts.groups is not None:
        common.check_positive("--groups", opts.groups, integer=True)
    if opts.channel_multiple is not None:
        common.check_positive("--channel-multiple", opts.channel_multiple, integer=True)
    if opts.flops_metric is not None and opts.flops_metric not in METRICS:
        raise UsageError(f"--flops-metric must be one of {', '.join(METRICS)}, not '{opts.flops_metric}'")
    from dsp_deploy.checkpoint import Checkpoint, build_model, load_checkpoint_or_weights, provenance, save_checkpoint
    from dsp_deploy.models import get_config
    from dsp_deploy.structure import count_costs
    from dsp_deploy.structure.masks import apply_structure
    from dsp_deploy.structure.validate import topology_for
    from dsp_deploy.training.distributed import init_distributed, shutdown
    from dsp_deploy.training.pruning import GroupChannelPruner

    source = common.resolve_checkpoint_arg(opts.checkpoint)
    if opts.latency is not None:
        opts.latency.target()  # an unknown or unmeasurable backend fails before any work
    ckpt = load_checkpoint_or_weights(source, opts.model)
    from dsp_deploy.dppnet.training import refuse_dppnet

    refuse_dppnet(ckpt.model, source, "the DSP pruner (`prune`)")
    if not all(layer.is_dense for layer in ckpt.structure.layers):
        raise CheckpointError(f"{source} is already pruned; prune a dense or group-learned checkpoint")
    if ckpt.extra.get("complete") is False:
        log.warning("%s is from an unfinished run (resume it to finish group learning)", source)
    metric = opts.flops_metric or get_config(ckpt.model).default_flops_metric
    model = build_model(ckpt)  # checks the state_dict against the architecture
    topo = topology_for(ckpt.structure)
    started = time.time()
    assignments, groups, grouping = _assignments(ckpt, topo, opts.groups, opts.seed, source)
    metadata: dict[str, Any] = {"method": "dsp", "groups": groups, "grouping": grouping, "flops_metric": metric}
    latency = None
    if opts.latency is None:
        metadata["target_flops_reduction_pct"] = round(100 * opts.flops_reduction, 4)
        if opts.channel_multiple and opts.channel_multiple > 1:
            metadata["channel_multiple"] = opts.channel_multiple
        pruner = GroupChannelPruner(topo, ckpt.state_dict, assignments, groups, metadata,
                                    channel_multiple=opts.channel_multiple)
        result = pruner.search(opts.flops_reduction, metric, progress=opts.progress)
        structure, beta, multiple, target_pct = result.structure, result.beta, opts.channel_multiple, result.target_pct
    else:
        from dsp_deploy.targets import channel_multiple
        from dsp_deploy.training.latency_prune import dsp_to_budget

        metadata.update(channel_multiple=channel_multiple(opts.latency.target()),
                        latency_goal=opts.latency.goal.describe())
        budgeted = dsp_to_budget(opts.latency, topo, ckpt.state_dict, assignments, groups, metadata,
                                 progress=opts.progress)
        latency, multiple, target_pct = budgeted.record, budgeted.multiple, None
        structure, beta = budgeted.structure, latency["beta"]
    apply_structure(model, structure, topo)
    costs = count_costs(structure, topo)
    fingerprint = common.structure_fingerprint(structure)
    ctx = init_distributed("cpu")
    try:
        fingerprints = ctx.gather_objects(fingerprint)
        if len(set(fingerprints)) != 1:
            raise CheckpointError(f"ranks computed different structures ({len(set(fingerprints))} distinct)")
        summary = {
            "checkpoint": opts.out, "source": source, "model": ckpt.model, "groups": groups, "grouping": grouping,
            "flops_metric": metric, "target_pct": target_pct, "reduction_pct": costs.reduction_pct(metric),
            "dsp_flops_reduction_pct": costs.dsp_flops_reduction_pct,
            "flops_reduction_pct": costs.flops_reduction_pct, "params_reduction_pct": costs.params_reduction_pct,
            "beta": beta, "channel_multiple": multiple, "latency": latency, "time_s": time.time() - started,
            "structure_sha256": fingerprint, "world_size": ctx.world_size, "rank": ctx.rank,
        }
        if ctx.is_main:
            meta = provenance(stage="prune", source=source, source_metadata=ckpt.metadata, **{
                k: summary[k] for k in ("groups", "grouping", "flops_metric", "target_pct", "reduction_pct", "beta",
                                        "channel_multiple", "structure_sha256", "latency")})
            extra = {"stage": "prune", "complete": True, "prune": {"beta": beta, "assignment": {
                n: [int(a) for a in v] for n, v in assignments.items()}}}
            save_checkpoint(opts.out, Checkpoint(ckpt.model, model.state_dict(), structure, dict(ckpt.config),
                                                 meta, extra))
        ctx.barrier()
        return summary
    finally:
        shutdown(ctx)
