"""CIFAR-10 from the standard python batches folder (``cifar-10-batches-py``).

The batches are pickles written by Python 2 cPickle (dicts with ``b'data'`` uint8 N x 3072,
R/G/B planes of 32x32, and ``b'labels'``). Pickles can run arbitrary code, so they are read
with an unpickler that only resolves the few numpy constructors an array needs.
"""
from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dsp_deploy.data.base import InMemoryDataset
from dsp_deploy.data.info import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, DatasetInfo
from dsp_deploy.data.transforms import cifar_train
from dsp_deploy.errors import DataError

log = logging.getLogger(__name__)

TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES: tuple[str, ...] = ("test_batch",)
FOLDER_NAME = "cifar-10-batches-py"

# (module, name) -> the attribute of numpy that may be returned. numpy 2 renamed numpy.core to
# numpy._core; old pickles (and the real CIFAR files) name numpy.core.
_ALLOWED: dict[tuple[str, str], tuple[str, str]] = {}
for _pkg in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_pkg}.multiarray", "_reconstruct")] = ("multiarray", "_reconstruct")
    _ALLOWED[(f"{_pkg}.multiarray", "scalar")] = ("multiarray", "scalar")
    _ALLOWED[(f"{_pkg}.numeric", "_frombuffer")] = ("numeric", "_frombuffer")
_ALLOWED[("numpy", "ndarray")] = ("", "ndarray")
_ALLOWED[("numpy", "dtype")] = ("", "dtype")


def _numpy_attr(submodule: str, name: str) -> Any:
    if not submodule:
        return getattr(np, name)
    import importlib

    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy < 2
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array/dtype/scalar constructors and
    ``_codecs.encode`` (how protocol-2 pickles written by Python 3 store bytes)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _numpy_attr(*_ALLOWED[(module, name)])
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}'")


def safe_unpickle(path: Path) -> Any:
    """Load a CIFAR-style pickle without executing arbitrary code; DataError names the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read '{path}': {exc.strerror or exc}") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any malformed or hostile pickle is a data problem
        raise DataError(f"'{path}' is not a valid CIFAR-10 batch pickle: {exc}") from None


def find_cifar_folder(path: Path) -> Path | None:
    """The batches folder at ``path`` or its ``cifar-10-batches-py`` child, or None."""
    for candidate in (path, path / FOLDER_NAME):
        if candidate.is_dir() and any((candidate / n).is_file() for n in TRAIN_BATCHES + TEST_BATCHES):
            return candidate
    return None


def _get(batch: dict, key: str) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    return None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"'{path}' is not a CIFAR-10 batch: expected a dict, got {type(batch).__name__}")
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"'{path}': b'data' must be a uint8 array of shape (N, 3072), got {desc}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"'{path}': b'labels' must be a list of integers") from None
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"'{path}': {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise DataError(f"'{path}': labels must be in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) of ``split`` ('train' or 'test'/'val')."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"CIFAR-10 folder '{root}' does not exist")
    folder = find_cifar_folder(root)
    if folder is None:
        raise DataError(f"'{root}' is not a CIFAR-10 batches folder (no data_batch_1..5 / test_batch"
                        f" in it or in '{root / FOLDER_NAME}')")
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    arrays, labels = [], []
    for name in names:
        file = folder / name
        if not file.is_file():
            raise DataError(f"CIFAR-10 batch '{file}' is missing")
        data, lab = _read_batch(file)
        arrays.append(data)
        labels.append(lab)
    log.debug("loaded CIFAR-10 %s split from %s: %d images", split, folder, sum(len(a) for a in arrays))
    return np.concatenate(arrays), np.concatenate(labels)


class CIFAR10Dataset(InMemoryDataset):
    """CIFAR-10 split held in memory; train augmentation = random crop 32 (padding 4) + flip."""

    def __init__(self, path: str | Path, split: str, *, augment: bool, seed: int) -> None:
        info = DatasetInfo("cifar10", 10, 32, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES)
        super().__init__(info, augment=augment, seed=seed)
        self.images, self.labels = load_cifar10(path, split)

    def raw(self, index: int, rng: np.random.Generator | None) -> np.ndarray:
        chw = self.images[index]
        return cifar_train(chw, rng) if rng is not None else chw
