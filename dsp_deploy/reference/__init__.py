"""Import of checkpoints released with the DSP paper (traced TorchScript CIFAR ResNets)."""
from __future__ import annotations

from dsp_deploy.reference.authors import import_authors_checkpoint

__all__ = ["import_authors_checkpoint"]
