"""Build the variants of a comparison in memory: dense, DSP (loaded or pruned one-shot), and the
channel-pruned baselines matched to each DSP variant's whole-model FLOPs.

DSP from a dense model uses the training stage's one-shot pruning (`dsp-deploy prune --groups G
--flops-reduction R`, in memory: ``dsp_deploy.training.dsp_prune.prune_dsp``) so the comparison
prunes exactly as the product does. Dense = the same weights with the unpruned structure.
"""
from __future__ import annotations

import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy.compare.config import TRAINED_BASELINES, CompareConfig, split_baseline
from dsp_deploy.compare.results import VariantInfo
from dsp_deploy.errors import CheckpointError, TrainingError, UsageError
from dsp_deploy.structure import CostReport, count_costs, dense_structure

if TYPE_CHECKING:
    import torch

    from dsp_deploy.checkpoint import Checkpoint

log = logging.getLogger(__name__)


@dataclass
class BuiltVariant:
    """A variant ready to export: ours (``checkpoint``) or a physically pruned torch module (``module``)."""

    info: VariantInfo
    checkpoint: "Checkpoint | None" = None
    module: "torch.nn.Module | None" = None


def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in n or n.endswith("constants.pkl") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_any_checkpoint(path: str) -> "Checkpoint":
    """A dsp-deploy checkpoint, or an authors' DSP TorchScript file converted on the fly."""
    from dsp_deploy.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError:
        if not _is_torchscript(path):
            raise
    from dsp_deploy.reference.authors import import_authors_checkpoint

    log.info("%s is an authors' TorchScript checkpoint: importing it", path)
    return import_authors_checkpoint(path)


def _one_shot(dense: "Checkpoint", groups: int, reduction: float, metric: str | None, seed: int,
              channel_multiple: int | None = None) -> "Checkpoint":
    """The training stage's one-shot group pruning of ``dense``, in memory;
    ``channel_multiple``: hardware-aligned pruning (``--channel-multiple``)."""
    from dsp_deploy.training.dsp_prune import DSPPruneOptions, prune_dsp

    options = DSPPruneOptions(flops_reduction=reduction, flops_metric=metric, groups=groups, seed=seed,
                              channel_multiple=channel_multiple)
    return prune_dsp(dense, options, source=str(dense.metadata.get("source") or "the dense checkpoint")).checkpoint


def _dense_checkpoint(config: CompareConfig) -> "Checkpoint":
    import torch

    from dsp_deploy.checkpoint import dense_checkpoint
    from dsp_deploy.models import create

    assert config.model is not None
    torch.manual_seed(config.seed)
    model = create(config.model, weights=config.dense_weights)
    origin = config.dense_weights or f"random init (seed {config.seed})"
    return dense_checkpoint(config.model, model.eval(), source=origin)


def _as_dense(ckpt: "Checkpoint") -> "Checkpoint":
    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.structure.validate import topology_for

    return Checkpoint(ckpt.model, dict(ckpt.state_dict), dense_structure(topology_for(ckpt.structure)),
                      dict(ckpt.config), {"source": "dense twin"})


def load_sources(config: CompareConfig) -> tuple["Checkpoint", list[tuple[str, "Checkpoint"]], str]:
    """(dense checkpoint, [(name suffix, DSP checkpoint)], description of the source)."""
    if config.checkpoint is not None:
        ckpt = load_any_checkpoint(config.checkpoint)
        if config.model is not None and config.model != ckpt.model:
            raise UsageError(f"--model {config.model} but {config.checkpoint} holds a {ckpt.model}")
        pruned = not all(layer.is_dense for layer in ckpt.structure.layers)
        if pruned and config.groups is not None:
            raise UsageError(f"{config.checkpoint} is already pruned: drop --groups/--flops-reduction "
                             "(they prune a dense checkpoint)")
        if pruned:
            return _as_dense(ckpt), [("", ckpt)], f"checkpoint {config.checkpoint}"
        if config.groups is None:
            raise UsageError(f"{config.checkpoint} is dense: give --groups G and --flops-reduction R to prune it")
        dense, origin = ckpt, f"dense checkpoint {config.checkpoint}"
    else:
        dense = _dense_checkpoint(config)
        origin = f"{config.model}, {dense.metadata.get('source')}"
    assert config.groups is not None
    multi = len(config.flops_reductions) > 1
    dsps = [(f"-{round(100 * r)}" if multi else "",
             _one_shot(dense, config.groups, r, config.flops_metric, config.seed)) for r in config.flops_reductions]
    return dense, dsps, f"one-shot DSP (G={config.groups}) of {origin}"


def _info(name: str, method: str, label: str, groups: int, costs: CostReport, **extra: Any) -> VariantInfo:
    return VariantInfo(name=name, method=method, label=label, groups=groups, flops=costs.flops, params=costs.params,
                       dense_flops=costs.dense_flops, dense_params=costs.dense_params,
                       flops_reduction_pct=costs.flops_reduction_pct,
                       dsp_flops_reduction_pct=costs.dsp_flops_reduction_pct,
                       params_reduction_pct=costs.params_reduction_pct, **extra)


def _tp_variant(name: str, dense: "Checkpoint", target: VariantInfo, input_shape: tuple[int, ...],
                tolerance: float) -> BuiltVariant:
    from dsp_deploy.baselines import torch_pruning as tpb
    from dsp_deploy.checkpoint import build_model
    from dsp_deploy.structure.validate import topology_for

    label = "Torch-Pruning"
    reason = tpb.available()
    if reason:
        info = VariantInfo(name, "torch-pruning", label, 1, 0, 0, target.dense_flops, target.dense_params, 0.0, None,
                           0.0, matched_to=target.name, status="skipped", reason=reason)
        return BuiltVariant(info)
    result = tpb.prune_to_flops(build_model(dense), target.flops, input_shape, tolerance=tolerance)
    topo = topology_for(dense.structure)
    per_layer = tpb.layer_macs(result.model, input_shape)
    body = sum(m for n, m in per_layer.items() if topo.has_conv(n) and topo.conv(n).in_block_body)
    dense_body = sum(s.dense_macs() for s in topo.convs if s.in_block_body)
    info = VariantInfo(
        name=name, method="torch-pruning", label=label, groups=1, flops=result.flops, params=result.params,
        dense_flops=target.dense_flops, dense_params=target.dense_params,
        flops_reduction_pct=100 * (1 - result.flops / target.dense_flops),
        dsp_flops_reduction_pct=100 * (1 - body / dense_body) if dense_body else None,
        params_reduction_pct=100 * (1 - result.params / target.dense_params), matched_to=target.name,
        flops_match_pct=100 * result.error, lowering="plain Conv", exporter="torch.onnx.export",
        notes=f"MetaPruner + MagnitudeImportance(p=1), global ranking, ratio {result.ratio:.4f}")
    return BuiltVariant(info, module=result.model)


def _method_variant(name: str, method: str, path: str | None, dense: "Checkpoint", target: VariantInfo, topo: Any,
                    config: CompareConfig) -> BuiltVariant:
    """A Pruning-from-Scratch / Soft-Channel-Pruning baseline: the trained checkpoint ``path`` as it is,
    else the method's structure search (1 epoch on 256 synthetic images) and its FLOPs-matched pruning."""
    from dsp_deploy.checkpoint import load_checkpoint
    from dsp_deploy.training.search import SearchOptions, prune_channels, run_search

    label = {"pfs": "Pruning from Scratch", "scp": "Soft Channel Pruning"}[method]
    if path is not None:
        ckpt = load_checkpoint(path)
        shape = (ckpt.structure.in_channels, *ckpt.structure.input_size)
        if shape != (dense.structure.in_channels, *dense.structure.input_size):
            raise UsageError(f"baseline {method}={path} takes {'x'.join(map(str, shape))} images, the compared "
                             f"model {'x'.join(map(str, (dense.structure.in_channels, *dense.structure.input_size)))}")
        if ckpt.model != dense.model or ckpt.structure.max_groups != 1:
            raise UsageError(f"baseline {method}={path}: expected a G=1 {dense.model} checkpoint "
                             f"(`dsp-deploy train --method {method}`), got {ckpt.model} G={ckpt.structure.max_groups}")
        costs = count_costs(ckpt.structure)
        note = f"trained checkpoint {path}"
    else:
        reduction = target.flops_reduction_pct / 100.0
        with tempfile.TemporaryDirectory(prefix=f"dsp-compare-{method}-") as scratch:
            run_search(SearchOptions(method=method, data="synthetic:256", out=scratch, model=dense.model,
                                     flops_reduction=reduction, flops_metric="total", overrides={"epochs": 1},
                                     data_overrides={"batch_size": 64, "workers": 0}, seed=config.seed,
                                     progress=False))
            ckpt = prune_channels(method, Path(scratch) / "checkpoint.pt", reduction, "total", seed=config.seed)
        costs = count_costs(ckpt.structure, topo)
        note = "structure search: 1 epoch on 256 synthetic images, whole-model MACs matched"
    info = _info(name, method, label, 1, costs, matched_to=target.name,
                 flops_match_pct=100 * (costs.flops - target.flops) / target.flops, exporter="dsp-deploy", notes=note)
    return BuiltVariant(info, checkpoint=ckpt)


def _l1_variant(name: str, streams: bool, dense: "Checkpoint", target: VariantInfo, topo: Any,
                tolerance: float) -> BuiltVariant:
    from dsp_deploy.baselines import l1_channel_prune
    from dsp_deploy.checkpoint import Checkpoint

    result = l1_channel_prune(topo, dense.state_dict, target.flops, tolerance=tolerance, prune_streams=streams)
    ckpt = Checkpoint(dense.model, dict(dense.state_dict), result.structure, {},
                      {"method": "l1-channel", "matched_to": target.name})
    what = "block-inner and residual-stream channels" if streams else "block-inner channels only"
    info = _info(name, "l1-channel", "L1 channel" if streams else "L1 channel (inner)", 1,
                 count_costs(result.structure, topo), matched_to=target.name, flops_match_pct=100 * result.error,
                 exporter="dsp-deploy", notes=f"{result.removed} channels removed; global normalised L1 ranking "
                                              f"over {what}")
    return BuiltVariant(info, checkpoint=ckpt)


def build_variants(config: CompareConfig) -> tuple[list[BuiltVariant], str]:
    """Every variant of the comparison (exports not done yet) and the source description."""
    from dsp_deploy.structure.validate import topology_for

    dense, dsps, source = load_sources(config)
    topo = topology_for(dense.structure)
    input_shape = (topo.in_channels, *topo.input_size)
    built = [BuiltVariant(_info("dense", "dense", "dense", 1, count_costs(dense.structure, topo),
                                lowering="dense", exporter="dsp-deploy"), checkpoint=dense)]
    for suffix, ckpt in dsps:
        costs = count_costs(ckpt.structure, topo)
        groups = ckpt.structure.max_groups
        meta = ckpt.structure.metadata
        label = f"DSP G={meta.get('groups', groups)} shaped" if meta.get("shaped_for") else f"DSP G={groups}"
        dsp = _info(f"dsp{suffix}", "dsp", label, groups, costs, exporter="dsp-deploy")
        built.append(BuiltVariant(dsp, checkpoint=ckpt))
        for key in ("l1", "l1-inner"):
            if key in config.baselines:
                built.append(_l1_variant(f"{key}{suffix}", key == "l1", dense, dsp, topo, config.tolerance))
        for item in config.baselines:
            key, path = split_baseline(item)
            if key in TRAINED_BASELINES:
                built.append(_method_variant(f"{key}{suffix}", key, path, dense, dsp, topo, config))
        if "dppnet" in config.baselines:
            from dsp_deploy.compare.dppnet import dppnet_variant

            built.append(dppnet_variant(f"dppnet{suffix}", dense, dsp, config.seed))
        if "tp" in config.baselines:
            try:
                built.append(_tp_variant(f"tp{suffix}", dense, dsp, input_shape, config.tolerance))
            except TrainingError as exc:
                log.warning("Torch-Pruning baseline for %s skipped: %s", dsp.name, exc)
                info = VariantInfo(f"tp{suffix}", "torch-pruning", "Torch-Pruning", 1, 0, 0, dsp.dense_flops,
                                   dsp.dense_params, 0.0, None, 0.0, matched_to=dsp.name, status="skipped",
                                   reason=str(exc))
                built.append(BuiltVariant(info))
    return built, source
