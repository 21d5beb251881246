"""Fashion-MNIST from its gzipped IDX files (Debian package ``dataset-fashion-mnist``).

70,000 greyscale 28x28 images of 10 clothing classes: ``train-*`` (60,000) and ``t10k-*``
(10,000). The IDX format is a big-endian header (magic ``0x0000 type ndim``, one uint32 per
dimension) followed by the raw uint8 data; every field is checked so that a truncated or foreign
file is a one-line DataError instead of garbage images.

Splits: ``test`` is the 10k set; ``val`` is a held-out part of the training file
(`VAL_SIZE` images, a seeded permutation with `SPLIT_SEED`, the same whatever the run's seed, so
no run ever trains on another run's validation images); ``train`` is the rest, optionally only
N of its images (``fashion-mnist@N``, then ``val`` is the first `SUBSET_VAL` held-out images) for
short runs such as the demo.
"""
from __future__ import annotations

import functools
import gzip
import logging
import struct
import zlib
from pathlib import Path

import numpy as np

from dsp_deploy.data.base import InMemoryDataset
from dsp_deploy.data.info import FASHION_MNIST_INFO
from dsp_deploy.data.transforms import cifar_train
from dsp_deploy.errors import DataError

log = logging.getLogger(__name__)

DEBIAN_PATH = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801  # uint8 data, 3 resp. 1 dimensions
SIZE = 28
VAL_SIZE = 5000
SUBSET_VAL = 1000
SPLIT_SEED = 20200523


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def has_idx_files(folder: Path) -> bool:
    """True if ``folder`` holds the four Fashion-MNIST IDX files (gzipped or not)."""
    return all(_find(folder, stem) is not None for pair in FILES.values() for stem in pair)


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """uint8 array (N, *item_shape) of an IDX file; DataError on a wrong magic, shape or length."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:  # truncated stream, bad header or CRC
            raise DataError(f"'{path}' is not a complete gzip file ({exc})") from None
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"'{path}' is truncated: {len(raw)} bytes, shorter than an IDX header")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise DataError(f"'{path}' is not an IDX file of this kind: magic number 0x{found:08x}, "
                        f"expected 0x{magic:08x}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if tuple(dims[1:]) != item_shape:
        raise DataError(f"'{path}' holds items of shape {tuple(dims[1:])}, expected {item_shape}")
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"'{path}' is truncated or padded: {len(raw) - header} data bytes for "
                        f"{dims[0]} items, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@functools.lru_cache(maxsize=4)
def load_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,) of the 'train' or 'test' file pair
    (cached: train and val come from the same file; the arrays are read-only)."""
    image_stem, label_stem = FILES[split]
    image_path, label_path = _find(folder, image_stem), _find(folder, label_stem)
    if image_path is None or label_path is None:
        missing = image_stem if image_path is None else label_stem
        raise DataError(f"no Fashion-MNIST IDX file '{missing}[.gz]' in '{folder}'")
    images = read_idx(image_path, IMAGE_MAGIC, (SIZE, SIZE))
    labels = read_idx(label_path, LABEL_MAGIC, ())
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"'{image_path}' has {images.shape[0]} images but '{label_path}' has "
                        f"{labels.shape[0]} labels")
    if labels.size and labels.max() >= 10:
        raise DataError(f"'{label_path}': labels must be in 0..9, found {int(labels.max())}")
    return images[:, None], labels.astype(np.int64)


def holdout_split(count: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices): a seeded permutation of ``range(count)``, disjoint."""
    if not 0 < val_size < count:
        raise DataError(f"cannot hold out {val_size} validation images from {count}")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


def resolve_folder(path: str | None) -> Path:
    """The IDX folder: ``path`` or the Debian location; DataError saying how to get it."""
    folder = Path(path).expanduser() if path else DEBIAN_PATH
    if not folder.is_dir():
        if path:
            raise DataError(f"Fashion-MNIST folder '{folder}' does not exist")
        raise DataError(f"Fashion-MNIST is not installed at {DEBIAN_PATH}: run 'apt-get install "
                        f"{DEBIAN_PACKAGE}' (Debian/Ubuntu) or pass 'fashion-mnist:PATH'")
    if not has_idx_files(folder):
        expected = ", ".join(s for p in FILES.values() for s in p)
        raise DataError(f"'{folder}' has no Fashion-MNIST IDX files (expected {expected}, gzipped or not)")
    return folder


class FashionMNISTDataset(InMemoryDataset):
    """One split held in memory (1x28x28 uint8); train augmentation: random crop (padding 2) + flip."""

    def __init__(self, path: str | None, split: str, *, augment: bool, seed: int, limit: int | None = None) -> None:
        super().__init__(FASHION_MNIST_INFO, augment=augment, seed=seed)
        folder = resolve_folder(path)
        if split == "test":
            self.images, self.labels = load_idx_pair(folder, "test")
        else:
            images, labels = load_idx_pair(folder, "train")
            train_idx, val_idx = holdout_split(len(labels), min(VAL_SIZE, len(labels) // 6 or 1), SPLIT_SEED)
            keep = val_idx if split == "val" else train_idx
            if limit is not None:  # short runs: N training images and the first SUBSET_VAL held-out ones
                keep = keep[:SUBSET_VAL] if split == "val" else \
                    np.sort(np.random.default_rng(SPLIT_SEED + 1).permutation(keep)[:limit])
            self.images, self.labels = images[keep], labels[keep]
        log.debug("Fashion-MNIST %s split from %s: %d images", split, folder, len(self.labels))

    def raw(self, index: int, rng: np.random.Generator | None) -> np.ndarray:
        chw = self.images[index]
        return cifar_train(chw, rng, padding=2) if rng is not None else chw


def ensure_installed() -> tuple[bool, str]:
    """(available, how): install the Debian package when it is missing and we can (root and
    apt-get present); ``how`` says what happened or how to get the set."""
    import os
    import shutil
    import subprocess

    if has_idx_files(DEBIAN_PATH):
        return True, f"Fashion-MNIST from {DEBIAN_PATH}"
    hint = f"install it with 'apt-get install {DEBIAN_PACKAGE}' (Debian/Ubuntu, as root) or pass fashion-mnist:PATH"
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, f"Fashion-MNIST is not installed: {hint}"
    for command in ([apt, "install", "-y", "-q", DEBIAN_PACKAGE], [apt, "update", "-q"],
                    [apt, "install", "-y", "-q", DEBIAN_PACKAGE]):
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=600)
        if has_idx_files(DEBIAN_PATH):
            return True, f"Fashion-MNIST from {DEBIAN_PATH} (installed {DEBIAN_PACKAGE} with apt-get)"
    return False, f"installing {DEBIAN_PACKAGE} with apt-get failed: {hint}"
