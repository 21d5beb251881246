"""dsp-deploy: make intra-channel (group) pruned CNNs run fast.

`import dsp_deploy` is cheap: torch, onnx and TensorRT are imported only by the functions
that need them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import DSPDeployError

__version__ = "0.1.0"
__all__ = ["DSPDeployError", "__version__", "load_model", "load_checkpoint", "save_checkpoint"]

if TYPE_CHECKING:
    import torch


def load_model(path: str) -> "torch.nn.Module":
    """Load a dsp-deploy checkpoint as an eval-mode model with its structure applied."""
    from dsp_deploy.checkpoint import load_model as _load_model

    return _load_model(path)


def __getattr__(name: str) -> Any:
    if name in ("load_checkpoint", "save_checkpoint"):
        from dsp_deploy import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'dsp_deploy' has no attribute {name!r}")
