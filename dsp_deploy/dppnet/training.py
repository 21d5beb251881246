"""DPPNet's two training stages, as hooks of the shared loop (training/loop.py).

* Pattern learning (`dsp-deploy train --model dppnet-...`): cross-entropy plus the authors'
  threshold sparsity term ``alpha * sum exp(-t)`` over every DPP threshold (train.py of
  lee-gwang/DPPNet; alpha = 8e-6 in their ImageNet ResNet-34 command). The loop back-propagates
  the cross-entropy; `PatternSparsityHook.before_step` adds the term's gradient
  ``-alpha * exp(-t)`` to the thresholds before the optimizer step, which is the same update.
* Fine-tuning (`dsp-deploy finetune RUN/checkpoint.pt`): the learned masks are frozen
  (`freeze_patterns`), masked weights zeroed and kept at zero (their gradient through the
  fixed mask is zero); `FrozenPatternHook` checks that after every step.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dsp_deploy.errors import CheckpointError, ModelError, TrainingError
from dsp_deploy.models.dpp import dpp_convs, to_dppnet


class PatternSparsityHook:
    """Adds the gradient of ``alpha * sum exp(-threshold)``; logs the term and the kept taps."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def before_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            for _, conv in dpp_convs(model):
                grad = -self.alpha * torch.exp(-conv.threshold)
                if conv.threshold.grad is None:
                    conv.threshold.grad = grad
                else:
                    conv.threshold.grad.add_(grad)

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        with torch.no_grad():
            convs = [conv for _, conv in dpp_convs(model)]
            term = sum(float(torch.exp(-c.threshold).sum()) for c in convs) * self.alpha
            union = [float((c.pattern_scores() > 0).any(dim=0).float().mean()) for c in convs]
        return {"sparsity_loss": term, "kept_taps": sum(union) / max(len(union), 1)}

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class FrozenPatternHook:
    """Fine-tuning: masks fixed; TrainingError if a masked weight ever becomes non-zero."""

    def before_step(self, model: nn.Module) -> None:
        return None

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        check_frozen(model)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def check_frozen(model: nn.Module) -> None:
    """TrainingError naming the layer if its masks are not frozen or a masked weight is non-zero."""
    for name, conv in dpp_convs(model):
        if not bool(conv.frozen):
            raise TrainingError("pattern masks are not frozen", layer=name)
        outside = conv.weight.detach() * (1 - conv.fixed_mask[:, None, None])
        if bool(outside.abs().sum() > 0):
            raise TrainingError("masked weights became non-zero", layer=name)


def refuse_dppnet(model_name: str, source: str, what: str) -> None:
    """ModelError if ``model_name`` is a DPPNet: ``what`` (e.g. the DSP pruner) handles plain ResNets."""
    from dsp_deploy.models import get_config

    if get_config(model_name).is_dppnet:
        raise ModelError(f"{source} is a DPPNet model ({model_name}); {what} takes plain ResNets "
                         "(DPPNet learns its patterns in `train` and fixes them in `finetune`)")


def dppnet_init_weights(ckpt: Any, model_name: str, source: str) -> dict[str, Any]:
    """State dict of a DPPNet started from a dense plain checkpoint (``--init``): every static
    kernel a copy of the dense kernel. A pruned (DSP) or other-model checkpoint is refused."""
    from dsp_deploy.checkpoint import build_model
    from dsp_deploy.models import create

    base = model_name.removeprefix("dppnet-")
    if ckpt.model == model_name:
        return build_model(ckpt).state_dict()
    if ckpt.model != base:
        raise ModelError(f"--init {source} is a {ckpt.model} checkpoint; {model_name} starts from {base} or "
                         f"{model_name}")
    pruned = [layer.name for layer in ckpt.structure.layers if not layer.is_dense]
    if pruned or ckpt.extra.get("group_logits"):
        what = f"pruned (layer '{pruned[0]}')" if pruned else "a DSP group-learning run"
        raise CheckpointError(f"--init {source} is {what}; DPPNet starts from a dense {base}")
    model = to_dppnet(build_model(ckpt), copy_weights=True)
    fresh = create(model_name, num_classes=ckpt.num_classes).state_dict()
    state = model.state_dict()
    return {k: state.get(k, v) for k, v in fresh.items()}
