"""The training stages' view of `dsp_deploy.data`: train and validation loaders for a spec."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dsp_deploy.data import DatasetInfo
from dsp_deploy.training.distributed import DistContext

log = logging.getLogger(__name__)

VAL_SPLIT = "val"  # CIFAR-10: the test batches; synthetic: the held-out stream; ImageFolder: val/


@dataclass
class Loaders:
    info: DatasetInfo
    train: Any
    val: Any


def check_data(spec: str, image_size: int | None = None) -> DatasetInfo:
    """Validate a dataset spec cheaply (no image is decoded); DataError if it is unusable."""
    from dsp_deploy.data import dataset_info

    return dataset_info(spec, image_size=image_size)


def build_loaders(spec: str, ctx: DistContext, *, batch_size: int, eval_batch_size: int, workers: int, seed: int,
                  augment: bool = True, image_size: int | None = None) -> Loaders:
    """Train (shuffled, augmented, sharded over ranks) and validation loaders of ``spec``."""
    from dsp_deploy.data import build_dataset, build_loader

    train_set = build_dataset(spec, "train", image_size=image_size, augment=augment, seed=seed)
    val_set = build_dataset(spec, VAL_SPLIT, image_size=image_size, augment=False, seed=seed)
    per_rank = max(1, batch_size // ctx.world_size)
    if ctx.world_size > 1 and batch_size % ctx.world_size:
        log.warning("batch size %d is not a multiple of %d processes: each takes %d", batch_size, ctx.world_size,
                    per_rank)
    train = build_loader(train_set, per_rank, shuffle=True, workers=workers, distributed=ctx.distributed,
                         seed=seed, drop_last=len(train_set) >= per_rank * ctx.world_size)
    val = build_loader(val_set, eval_batch_size, shuffle=False, workers=workers, distributed=ctx.distributed,
                       seed=seed, drop_last=False)
    return Loaders(train_set.info, train, val)


def loaders_from_settings(spec: str, ctx: DistContext, data_settings: Mapping[str, Any], seed: int) -> Loaders:
    """``build_loaders`` with a recipe's data settings (batch_size, eval_batch_size, workers, augment)."""
    return build_loaders(spec, ctx, batch_size=data_settings["batch_size"], workers=data_settings["workers"],
                         eval_batch_size=data_settings["eval_batch_size"], seed=seed,
                         augment=data_settings["augment"])
