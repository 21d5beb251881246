"""DSP group channel pruning in memory: a loaded `Checkpoint` + `DSPPruneOptions` -> the pruned
`Checkpoint` + a typed `PruneRecord`. No files, no command-line flags: errors name the option
(``flops_reduction must be ...``). `dsp_deploy.training.prune.prune_checkpoint` (paths, torchrun)
and the `prune` command are thin layers over `prune_dsp`."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dsp_deploy.checkpoint import Checkpoint, build_model, provenance
from dsp_deploy.errors import CheckpointError, OptionError, UsageError
from dsp_deploy.models import get_config
from dsp_deploy.pruning import get_criterion
from dsp_deploy.structure import count_costs
from dsp_deploy.training import common
from dsp_deploy.training.hardware_prune import HardwareTarget, dsp_to_flops_on_target
from dsp_deploy.training.latency_prune import LatencyOptions, dsp_to_budget
from dsp_deploy.training.recipe import load_recipe

log = logging.getLogger(__name__)

METRICS = ("dsp", "total")
DEFAULT_CRITERION = "l2sq"


def _check(option: str, check: Any, value: Any, **kwargs: Any) -> None:
    """Run a `common.check_*` helper, re-raising its UsageError as an OptionError naming ``option``."""
    try:
        check("{option}", value, **kwargs)
    except UsageError as exc:
        raise OptionError(exc.detail, option) from None


@dataclass(frozen=True)
class DSPPruneOptions:
    """What to prune to and how; validated on construction (OptionError naming the field).

    One target: ``flops_reduction`` (a fraction, 0.6 = 60% fewer FLOPs in the ``flops_metric``
    convention, default the model family's) or ``latency`` (`LatencyOptions`). ``groups``: group
    the filters one-shot (needed for a dense checkpoint; overrides learned groups).
    ``channel_multiple``: hardware-aligned group sizes (with ``latency`` or ``hardware``: overrides the
    target's alignment). ``hardware``: shape a FLOPs-targeted structure for that target
    (`hardware_prune`). ``criterion``: the weight-importance criterion (`dsp_deploy.pruning.criteria`)."""

    flops_reduction: float | None = None
    flops_metric: str | None = None
    groups: int | None = None
    seed: int = 0
    channel_multiple: int | None = None
    latency: LatencyOptions | None = None
    criterion: str = DEFAULT_CRITERION
    progress: bool = False
    hardware: HardwareTarget | None = None

    def __post_init__(self) -> None:
        if self.latency is None:
            if self.flops_reduction is None:
                raise OptionError("no target: pass {option}", "target",
                                  shown="flops_reduction (e.g. 0.6 for 60% fewer FLOPs) or latency (a latency goal)")
            _check("flops_reduction", common.check_fraction, self.flops_reduction)
        elif self.flops_reduction is not None:
            raise OptionError("give one pruning target: {option} or a latency goal, not both", "flops_reduction")
        if self.latency is not None and self.hardware is not None:
            raise OptionError("{option} shapes a FLOPs target; a latency goal is shaped for its target already",
                              "hardware")
        if self.groups is not None:
            _check("groups", common.check_positive, self.groups, integer=True)
        if self.channel_multiple is not None:
            _check("channel_multiple", common.check_positive, self.channel_multiple, integer=True)
            if self.latency is not None and self.latency.channel_multiple != self.channel_multiple:
                object.__setattr__(self, "latency", dataclasses.replace(self.latency,
                                                                        channel_multiple=self.channel_multiple))
            if self.hardware is not None and self.hardware.channel_multiple != self.channel_multiple:
                object.__setattr__(self, "hardware", dataclasses.replace(self.hardware,
                                                                         channel_multiple=self.channel_multiple))
        if self.flops_metric is not None and self.flops_metric not in METRICS:
            raise OptionError(f"{{option}} must be one of {', '.join(METRICS)}, not '{self.flops_metric}'",
                              "flops_metric")
        try:
            get_criterion(self.criterion)
        except UsageError as exc:
            raise OptionError(exc.detail.replace("criterion", "{option}", 1), "criterion") from None

    @classmethod
    def from_recipe(cls, recipe: str | Mapping[str, Any] | None, **given: Any) -> DSPPruneOptions:
        """Options from ``given`` (fields; None = unset) with the recipe's ``prune`` section (a shipped
        recipe name, a JSON file or a loaded recipe) as defaults: groups, flops_metric and, without a
        latency goal, flops_reduction, and without a target (latency or hardware) channel_multiple."""
        section = (load_recipe(recipe) if recipe is None or isinstance(recipe, str) else recipe)["prune"]
        keys = ["groups", "flops_metric"] + (["flops_reduction"] if given.get("latency") is None else [])
        if given.get("latency") is None and given.get("hardware") is None:  # a target brings its own alignment
            keys.append("channel_multiple")
        return cls(**{**given, **{k: section[k] for k in keys if given.get(k) is None}})


@dataclass(frozen=True)
class PruneRecord:
    """What the pruning did: target, grouping, threshold, costs, alignment, latency record."""

    model: str
    groups: int
    grouping: str  # "learned" or "one-shot-clustering"
    flops_metric: str
    target_pct: float | None  # the FLOPs target in percent (None with a latency goal)
    reduction_pct: float  # in the flops_metric convention
    dsp_flops_reduction_pct: float
    flops_reduction_pct: float
    params_reduction_pct: float
    beta: float
    channel_multiple: int | None
    latency: dict[str, Any] | None
    time_s: float
    structure_sha256: str
    criterion: str = DEFAULT_CRITERION
    hardware: dict[str, Any] | None = None  # the target a FLOPs-targeted structure was shaped for (hardware_prune)


@dataclass(frozen=True)
class PrunedDSP:
    """The pruned checkpoint (pruned weights zero, structure IR with groups and kept channels)."""

    checkpoint: Checkpoint
    record: PruneRecord


def _assignments(ckpt: Checkpoint, topo: Any, groups: int | None, seed: int,
                 source: str) -> tuple[dict[str, Any], int, str]:
    """(filter -> group per conv, G, how the groups were obtained)."""
    from dsp_deploy.training.clustering import one_shot_assignments
    from dsp_deploy.training.pruning import assignments_from_logits
    from dsp_deploy.training.regularizer import prunable_convs

    logits = ckpt.extra.get("group_logits")
    if groups is not None:
        if logits:
            log.warning("groups=%d given: ignoring the group logits learned in %s (one-shot grouping)",
                        groups, source)
        return one_shot_assignments(topo, ckpt.state_dict, groups, seed=seed), groups, "one-shot-clustering"
    if not logits:
        raise OptionError(f"{source} has no learned groups (it is not a `dsp-deploy train` group-learning "
                          "checkpoint); pass {option} G to group its filters one-shot", "groups")
    names = {spec.name for spec in prunable_convs(topo)}
    if set(logits) != names:
        missing = sorted(names - set(logits)) or sorted(set(logits) - names)
        raise CheckpointError(f"{source}: group logits do not match {ckpt.model}'s convs (e.g. '{missing[0]}')")
    counts = {int(v.shape[0]) for v in logits.values()}
    if len(counts) != 1:
        raise CheckpointError(f"{source}: group logits have different group counts {sorted(counts)}")
    return assignments_from_logits(logits), counts.pop(), "learned"


def prune_dsp(ckpt: Checkpoint, options: DSPPruneOptions, *, source: str = "the checkpoint") -> PrunedDSP:
    """Prune the dense or group-learned ``ckpt`` to ``options``' FLOPs (or latency) target;
    ``source`` names it in messages and in the pruned checkpoint's provenance."""
    from dsp_deploy.dppnet.training import refuse_dppnet
    from dsp_deploy.structure.masks import apply_structure
    from dsp_deploy.structure.validate import topology_for
    from dsp_deploy.training.pruning import GroupChannelPruner

    if options.latency is not None:
        options.latency.target()  # an unknown or unmeasurable backend fails before any work
    if options.hardware is not None:
        options.hardware.target()
    refuse_dppnet(ckpt.model, source, "the DSP pruner (`prune`)")
    if not all(layer.is_dense for layer in ckpt.structure.layers):
        raise CheckpointError(f"{source} is already pruned; prune a dense or group-learned checkpoint")
    if ckpt.extra.get("complete") is False:
        log.warning("%s is from an unfinished run (resume it to finish group learning)", source)
    metric = options.flops_metric or get_config(ckpt.model).default_flops_metric
    model = build_model(ckpt)  # checks the state_dict against the architecture
    topo = topology_for(ckpt.structure)
    started = time.time()
    assignments, groups, grouping = _assignments(ckpt, topo, options.groups, options.seed, source)
    metadata: dict[str, Any] = {"method": "dsp", "groups": groups, "grouping": grouping, "flops_metric": metric}
    if options.criterion != DEFAULT_CRITERION:
        metadata["criterion"] = options.criterion
    latency = hardware = None
    if options.latency is None:
        assert options.flops_reduction is not None  # checked on construction
        metadata["target_flops_reduction_pct"] = round(100 * options.flops_reduction, 4)
    if options.hardware is not None:
        shaped = dsp_to_flops_on_target(options.hardware, topo, ckpt.state_dict, assignments, groups, metadata,
                                        options.flops_reduction, metric, criterion=options.criterion,
                                        progress=options.progress)
        result, multiple, hardware = shaped.result, shaped.multiple, shaped.record
        structure, beta, target_pct = result.structure, result.beta, result.target_pct
    elif options.latency is None:
        if options.channel_multiple and options.channel_multiple > 1:
            metadata["channel_multiple"] = options.channel_multiple
        pruner = GroupChannelPruner(topo, ckpt.state_dict, assignments, groups, metadata,
                                    channel_multiple=options.channel_multiple, criterion=options.criterion)
        result = pruner.search(options.flops_reduction, metric, progress=options.progress)
        structure, beta, target_pct = result.structure, result.beta, result.target_pct
        multiple = options.channel_multiple
    else:
        metadata["latency_goal"] = options.latency.goal.describe()  # the structure's channel_multiple: the one used
        budgeted = dsp_to_budget(options.latency, topo, ckpt.state_dict, assignments, groups, metadata,
                                 progress=options.progress, criterion=options.criterion)
        latency, multiple, target_pct = budgeted.record, budgeted.multiple, None
        structure, beta = budgeted.structure, latency["beta"]
    apply_structure(model, structure, topo)
    costs = count_costs(structure, topo)
    record = PruneRecord(
        model=ckpt.model, groups=groups, grouping=grouping, flops_metric=metric, target_pct=target_pct,
        reduction_pct=costs.reduction_pct(metric), dsp_flops_reduction_pct=costs.dsp_flops_reduction_pct,
        flops_reduction_pct=costs.flops_reduction_pct, params_reduction_pct=costs.params_reduction_pct, beta=beta,
        channel_multiple=multiple, latency=latency, time_s=time.time() - started,
        structure_sha256=common.structure_fingerprint(structure), criterion=options.criterion, hardware=hardware)
    meta = provenance(stage="prune", source=source, source_metadata=ckpt.metadata, **{
        k: getattr(record, k) for k in ("groups", "grouping", "flops_metric", "target_pct", "reduction_pct", "beta",
                                        "channel_multiple", "structure_sha256", "latency")})
    if hardware is not None:
        meta["hardware"] = hardware
    if options.criterion != DEFAULT_CRITERION:
        meta["criterion"] = options.criterion
    extra = {"stage": "prune", "complete": True, "prune": {"beta": beta, "assignment": {
        n: [int(a) for a in v] for n, v in assignments.items()}}}
    pruned = Checkpoint(ckpt.model, model.state_dict(), structure, dict(ckpt.config), meta, extra)
    return PrunedDSP(pruned, record)
