"""Common base of the datasets: normalised float32 CHW samples whose random augmentation is a
pure function of (seed, epoch, index), so runs are reproducible whatever the number of
DataLoader workers or processes, and a resumed run sees the same augmentations."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dsp_deploy.data.info import DatasetInfo
from dsp_deploy.data.transforms import normalize

_SEED_MASK = (1 << 63) - 1


class SeededDataset(Dataset):
    """Map-style dataset of ``(image, label)``: image float32 (3, H, W) normalised with
    ``info.mean``/``info.std``, label an int. Subclasses implement `__len__`, `label` and
    `raw(index, rng)` (uint8 CHW; ``rng`` is None when not augmenting)."""

    def __init__(self, info: DatasetInfo, *, augment: bool, seed: int) -> None:
        self.info = info
        self.augment = bool(augment)
        self.seed = int(seed) & _SEED_MASK
        self.epoch = 0

    @property
    def classes(self) -> list[str]:
        return list(self.info.classes)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (the loaders of `build_loader` call this)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The random generator for sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch & _SEED_MASK, index])

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def label(self, index: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw(self, index: int, rng: np.random.Generator | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @property
    def targets(self) -> list[int]:
        """Every sample's label, in index order."""
        return [self.label(i) for i in range(len(self))]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        chw = self.raw(index, self.rng(index) if self.augment else None)
        return normalize(chw, self.info.mean, self.info.std), self.label(index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.info.name!r}, {len(self)} samples, "
                f"{self.info.num_classes} classes, augment={self.augment}, seed={self.seed})")


class InMemoryDataset(SeededDataset):
    """A SeededDataset over uint8 arrays held in memory: ``images`` (N, 3, H, W), ``labels`` (N,).
    Subclasses set both in ``__init__`` and implement `raw`."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def label(self, index: int) -> int:
        return int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()
