"""The peers' path: Torch-Pruning magnitude (L1) pruning at a MACs target, exported with plain
``torch.onnx.export``.

Torch-Pruning (``pip install torch-pruning``, the ``baselines`` extra) is optional: ``available()``
says whether it imports. Pruning is ``MetaPruner`` with ``MagnitudeImportance(p=1)`` and global
ranking (so the channel count moves in steps of one channel and the MACs can be matched); the
global ratio is found by bisection on fresh copies of the dense model. MACs are counted with
forward hooks the same way ``CostReport.flops`` counts them (conv + classifier multiply-accumulates),
so the match is against the same number the DSP and L1 variants report.
"""
from __future__ import annotations

import copy
import logging
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsp_deploy.errors import ExportError, TrainingError
from dsp_deploy.utils.atomic import atomic_path

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_PRUNING_RATIO = 0.9  # per-layer cap, so no layer is pruned away entirely
_ITERATIONS = 24


def available() -> str | None:
    """None if torch_pruning imports, else the reason it does not."""
    try:
        import torch_pruning  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install
        return f"torch-pruning is not installed ({type(exc).__name__}: {exc}); pip install 'dsp-deploy[baselines]'"
    return None


def layer_macs(model: "torch.nn.Module", input_shape: tuple[int, ...]) -> dict[str, int]:
    """Multiply-accumulates for one sample of every conv and linear layer, by module name."""
    import torch
    from torch import nn

    macs: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                macs[name] = macs.get(name, 0) + output[0].numel() * (module.in_channels // module.groups) * k
            else:
                macs[name] = macs.get(name, 0) + module.in_features * module.out_features
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return macs


def count_macs_params(model: "torch.nn.Module", input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Conv + linear multiply-accumulates for one sample (as ``CostReport.flops``), and the parameter count."""
    return sum(layer_macs(model, input_shape).values()), sum(p.numel() for p in model.parameters())


@dataclass
class TorchPruningResult:
    """A physically pruned torch model, its MACs/params and the global ratio that produced it."""

    model: "torch.nn.Module"
    flops: int
    params: int
    target_flops: int
    ratio: float
    evaluations: int

    @property
    def error(self) -> float:
        return (self.flops - self.target_flops) / self.target_flops


def _prune_copy(dense: "torch.nn.Module", ratio: float, input_shape: tuple[int, ...]) -> "torch.nn.Module":
    import torch
    import torch_pruning as tp

    model = copy.deepcopy(dense).eval()
    example = torch.zeros(1, *input_shape)
    classifier = getattr(model, "fc", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(
            model, example, importance=tp.importance.MagnitudeImportance(p=1), global_pruning=True,
            pruning_ratio=ratio, max_pruning_ratio=MAX_PRUNING_RATIO,
            ignored_layers=[classifier] if classifier is not None else [],
        )
        pruner.step()
    return model


def prune_to_flops(dense: "torch.nn.Module", target_flops: int, input_shape: tuple[int, ...], *,
                   tolerance: float = 0.01) -> TorchPruningResult:
    """Global L1 magnitude pruning of ``dense`` (left untouched) to ``target_flops`` MACs."""
    reason = available()
    if reason:
        raise TrainingError(reason)
    base, _ = count_macs_params(dense, input_shape)
    if not 0 < target_flops <= base:
        raise TrainingError(f"target of {target_flops} MACs is outside (0, {base}] (the dense model)")
    lo, hi = 0.0, MAX_PRUNING_RATIO
    best: TorchPruningResult | None = None
    evaluations = 0
    for _ in range(_ITERATIONS):
        ratio = (lo + hi) / 2
        model = _prune_copy(dense, ratio, input_shape)
        flops, params = count_macs_params(model, input_shape)
        evaluations += 1
        if best is None or abs(flops - target_flops) < abs(best.flops - target_flops):
            best = TorchPruningResult(model, flops, params, target_flops, ratio, evaluations)
        if abs(flops - target_flops) <= tolerance * target_flops / 2:
            break
        if flops > target_flops:
            lo = ratio
        else:
            hi = ratio
    assert best is not None
    best.evaluations = evaluations
    if abs(best.error) > tolerance:
        raise TrainingError(f"Torch-Pruning could not reach {target_flops / 1e6:.2f} MMACs within "
                            f"{100 * tolerance:.1f}% (closest: {best.flops / 1e6:.2f} MMACs at ratio {best.ratio:.4f})")
    log.info("Torch-Pruning: global ratio %.4f gives %.4g MACs vs target %.4g (%+.2f%%)",
             best.ratio, best.flops, target_flops, 100 * best.error)
    return best


def export_plain_onnx(model: "torch.nn.Module", out_path: str | os.PathLike[str], input_shape: tuple[int, ...],
                      *, opset: int = 17) -> None:
    """``torch.onnx.export`` as users call it (TorchScript exporter, dynamic batch axis), atomically."""
    import torch

    example = torch.zeros(1, *input_shape)
    try:
        with atomic_path(out_path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(), (example,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
    except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"torch.onnx.export of the Torch-Pruning model failed: {first}") from None
