"""Data pipeline: CIFAR-10 batches, ImageFolder trees and a built-in synthetic dataset, with
Pillow/numpy augmentations (no torchvision) and seeded multi-worker loaders.

Public API (importing this package does not import torch; the functions do)::

    build_dataset(name_or_path, split, *, image_size=None, augment, seed) -> Dataset
    build_loader(dataset, batch_size, *, shuffle, workers, distributed, seed, drop_last) -> DataLoader
    dataset_info(name_or_path, *, image_size=None, split="train") -> DatasetInfo
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsp_deploy.data.info import DatasetInfo

if TYPE_CHECKING:
    from dsp_deploy.data.factory import build_dataset, dataset_info
    from dsp_deploy.data.loader import EpochDataLoader, build_loader

__all__ = ["DatasetInfo", "EpochDataLoader", "build_dataset", "build_loader", "dataset_info"]

_LAZY = {
    "build_dataset": "dsp_deploy.data.factory",
    "dataset_info": "dsp_deploy.data.factory",
    "build_loader": "dsp_deploy.data.loader",
    "EpochDataLoader": "dsp_deploy.data.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dsp_deploy.data' has no attribute {name!r}")
