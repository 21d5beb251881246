"""DataLoader construction: multi-worker, optionally sharded over distributed ranks, with
shuffling, worker seeds and augmentations all a function of (seed, epoch)."""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dsp_deploy.errors import DataError, DSPDeployError, UsageError

_MASK = (1 << 63) - 1


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed & _MASK, epoch & _MASK, 0x5EED]).generate_state(1, np.uint64)[0]) & _MASK


def seed_worker(worker_id: int) -> None:
    """Seed numpy and `random` in a worker from its torch seed (itself derived from the
    loader's per-epoch generator), for any randomness outside the datasets' own generators."""
    seed = torch.initial_seed() & 0xFFFFFFFF
    np.random.seed(seed)
    random.seed(seed)


class ShardSampler(Sampler[int]):
    """Evaluation sharding over ranks without padding: rank ``r`` gets indices r, r+W, ...
    (DistributedSampler pads with repeats, which would bias summed metrics)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _one_line(exc: DSPDeployError) -> DSPDeployError:
    """A DSPDeployError re-raised by DataLoader carries the worker's traceback in its message;
    keep only the original message so the CLI can print one line."""
    text = str(exc).strip()
    if "DataLoader worker" not in text or "\n" not in text:
        return exc
    last = text.splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
    return type(exc)(last[len(prefix):] if last.startswith(prefix) else last)


class EpochDataLoader(DataLoader):
    """DataLoader that, on each iteration, applies its epoch to the sampler (shuffle order),
    the dataset (augmentations) and the generator (worker seeds), then advances it. Call
    `set_epoch` to choose the epoch explicitly (e.g. when resuming)."""

    def __init__(self, *args: Any, base_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_seed = int(base_seed)
        self.next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.next_epoch = int(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.next_epoch
        self.next_epoch += 1
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        if self.generator is not None:
            self.generator.manual_seed(_epoch_seed(self.base_seed, epoch))
        return self._iterate(super().__iter__())

    @staticmethod
    def _iterate(batches: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from batches
        except DSPDeployError as exc:
            clean = _one_line(exc)
            if clean is exc:
                raise
            raise clean from None


def build_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, workers: int, distributed: bool,
                 seed: int, drop_last: bool, pin_memory: bool | None = None) -> EpochDataLoader:
    """A DataLoader over ``dataset`` with ``workers`` worker processes (0 = in-process).

    ``distributed``: shard over the initialised torch.distributed group (training: a
    DistributedSampler, padded so every rank has the same number of batches; evaluation
    (``shuffle=False``): disjoint unpadded shards, so summed metrics count each sample once).
    ``pin_memory`` defaults to whether CUDA is available.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    if workers < 0:
        raise UsageError(f"number of data workers must be >= 0, got {workers}")
    generator = torch.Generator()
    generator.manual_seed(_epoch_seed(seed, 0))
    sampler: Sampler[int] | None = None
    if distributed:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise DataError("distributed data loading needs an initialised torch.distributed process group")
        rank, world = dist.get_rank(), dist.get_world_size()
        if shuffle:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                         seed=int(seed) & 0x7FFFFFFF, drop_last=drop_last)
        else:
            sampler = ShardSampler(len(dataset), rank, world)  # type: ignore[arg-type]
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return EpochDataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=generator,
        base_seed=seed,
        persistent_workers=False,  # workers must see each epoch's dataset.set_epoch
    )
