"""Tiny Fashion-MNIST-format IDX files for the tests (the format, not the real images)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from dsp_deploy.data.fashion_mnist import IMAGE_MAGIC, LABEL_MAGIC


def write_idx(path: Path, array: np.ndarray, magic: int, *, count: int | None = None, cut: int = 0) -> None:
    """An IDX file (gzipped if the name ends in .gz); ``count`` overrides the header's item count,
    ``cut`` drops that many bytes from the end."""
    dims = (count if count is not None else array.shape[0], *array.shape[1:])
    raw = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_fashion_set(folder: Path, n_train: int = 60, n_test: int = 20, *,
                      learnable: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The four IDX files of a random set; ``learnable``: each class is a bright horizontal band."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 256 if not learnable else 64, (n, 28, 28), dtype=np.uint8)
        if learnable:
            for i, label in enumerate(labels):
                images[i, 2 + 2 * label:4 + 2 * label] = 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, IMAGE_MAGIC)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, LABEL_MAGIC)
        out.append(images)
    return out[0], out[1]
