"""Helpers for the data-pipeline tests: CIFAR batch files in the real pickle format, images
written with Pillow."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """The bytes Python 2 cPickle (protocol 2) writes for a CIFAR batch dict: str keys as
    BINSTRING, the array via numpy.core.multiarray._reconstruct + BUILD (as in the real files)."""

    def s(text: bytes) -> bytes:  # SHORT_BINSTRING / BINSTRING
        return b"U" + bytes([len(text)]) + text if len(text) < 256 else b"T" + struct.pack("<i", len(text)) + text

    def i(value: int) -> bytes:  # BININT
        return b"J" + struct.pack("<i", value)

    out = [b"\x80\x02}("]
    out += [s(b"batch_label"), s(b"fake batch")]
    out += [s(b"labels"), b"]("] + [i(v) for v in labels] + [b"e"]
    out += [s(b"data"), b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n",
            i(0), b"\x85", s(b"b"), b"\x87R"]
    out += [b"(", i(1), i(data.shape[0]), i(data.shape[1]), b"\x86"]
    out += [b"cnumpy\ndtype\n", s(b"u1"), i(0), i(1), b"\x87R", b"(", i(3), s(b"|"), b"NNN", i(-1), i(-1), i(0),
            b"tb"]
    out += [b"\x89", s(data.tobytes()), b"tb"]
    out += [b"u."]
    return b"".join(out)


def write_cifar_folder(root: Path, per_batch: int = 4, style: str = "py2", seed: int = 0) -> dict:
    """Write data_batch_1..5 + test_batch (``per_batch`` images each) under ``root``; returns
    {'train': (data, labels), 'test': (data, labels)} as written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, list] = {"train": [[], []], "test": [[], []]}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        if style == "py2":
            blob = py2_cifar_pickle(data, labels)
        else:  # modern Python 3 pickle of the same dict
            blob = pickle.dumps({b"batch_label": b"fake", b"labels": labels, b"data": data},
                                protocol=int(style.removeprefix("proto")))
        (root / name).write_bytes(blob)
        split = "test" if name == "test_batch" else "train"
        written[split][0].append(data)
        written[split][1].extend(labels)
    return {k: (np.concatenate(v[0]), np.array(v[1])) for k, v in written.items()}


def write_image(path: Path, size: tuple[int, int], seed: int) -> np.ndarray:
    """A random RGB image of ``size`` (w, h) written with Pillow; returns its HWC array."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr
