"""`build_dataset` / `dataset_info`: turn a dataset spec into a dataset.

Specs: ``synthetic`` (or ``synthetic:N`` for N samples in the split), ``cifar10:PATH``,
``fashion-mnist`` (the Debian package's folder) or ``fashion-mnist:PATH``, either with ``@N`` to
train on N images of the training part only,
``imagefolder:PATH``, or a bare PATH, auto-detected: a CIFAR-10 python batches folder (or its
parent), else an ImageFolder tree. An ImageFolder root may hold split folders
(``train/``, ``val/``) or be the class root itself.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dsp_deploy.data.info import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo
from dsp_deploy.errors import DataError

if TYPE_CHECKING:
    from torch.utils.data import Dataset

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "validation", "test"),
    "test": ("test", "val", "validation"),
}


def _parse(spec: str) -> tuple[str, str]:
    """(kind, argument): kind is 'synthetic', 'cifar10', 'fashion-mnist' or 'imagefolder'."""
    spec = str(spec).strip()
    head, sep, rest = spec.partition(":")
    if head.partition("@")[0] == "fashion-mnist":
        return "fashion-mnist", spec[len("fashion-mnist"):].removeprefix(":")
    if head == "synthetic":
        if sep and not (rest.isdigit() and int(rest) > 0):
            raise DataError(f"dataset '{spec}': the synthetic size must be a positive integer ('synthetic:N')")
        return "synthetic", rest
    if head in ("cifar10", "imagefolder") and sep:
        if not rest:
            raise DataError(f"dataset '{spec}' needs a path: '{head}:PATH'")
        return head, rest
    if not spec:
        raise DataError("empty dataset name: use 'synthetic', 'cifar10:PATH', 'fashion-mnist' or a dataset folder")
    path = Path(spec).expanduser()
    if not path.exists() and spec in ("cifar10", "imagefolder"):
        raise DataError(f"dataset '{spec}' needs a path: '{spec}:PATH'")
    if not path.exists():
        raise DataError(f"dataset '{spec}' not found: not 'synthetic', 'cifar10:PATH' or an existing folder")
    from dsp_deploy.data.cifar import find_cifar_folder
    from dsp_deploy.data.fashion_mnist import has_idx_files

    if path.is_dir() and has_idx_files(path):
        return "fashion-mnist", spec
    return ("cifar10" if find_cifar_folder(path) is not None else "imagefolder"), spec


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}': expected one of {', '.join(SPLITS)}")


def _fixed_size(kind: str, image_size: int | None, size: int = 32) -> None:
    if image_size not in (None, size):
        raise DataError(f"{kind} images are {size}x{size}; image size {image_size} is not supported")


def _fashion_arg(arg: str) -> tuple[str | None, int | None]:
    """(folder or None for the Debian location, train subset size or None) of 'PATH@N'."""
    path, sep, count = arg.rpartition("@") if "@" in arg else (arg, "", "")
    if sep and not (count.isdigit() and int(count) > 0):
        raise DataError(f"dataset 'fashion-mnist:{arg}': the train subset size must be a positive integer ('@N')")
    return (path or None), (int(count) if sep else None)


def image_folder_split(root: Path, split: str) -> Path:
    """The class root for ``split``: ``root/train``, ``root/val`` ... if present, else ``root``."""
    if not root.exists():
        raise DataError(f"image folder '{root}' does not exist")
    for name in _SPLIT_DIRS[split]:
        if (root / name).is_dir():
            return root / name
    present = sorted({n for names in _SPLIT_DIRS.values() for n in names if (root / n).is_dir()})
    if present:
        raise DataError(f"no '{split}' folder in '{root}' (found: {', '.join(present)})")
    return root


def build_dataset(name_or_path: str, split: str, *, image_size: int | None = None, augment: bool,
                  seed: int) -> "Dataset":
    """The dataset of ``split`` ('train', 'val' or 'test'); samples are ``(float32 CHW, int)``.

    ``augment``: training augmentation (CIFAR/synthetic: random crop, plus flip for CIFAR;
    ImageFolder: random-resized-crop + flip), else the deterministic eval transform.
    ``seed`` fixes the augmentation draws (and the synthetic images). ``image_size`` is the
    ImageFolder crop size (default 224; eval resizes to 256/224 of it first); CIFAR and
    synthetic only accept 32. Every problem raises DataError naming the path.
    """
    _check_split(split)
    kind, arg = _parse(name_or_path)
    if kind == "synthetic":
        from dsp_deploy.data.synthetic import SyntheticDataset

        _fixed_size("synthetic", image_size)
        return SyntheticDataset(split, size=int(arg) if arg else None, augment=augment, seed=seed)
    if kind == "cifar10":
        from dsp_deploy.data.cifar import CIFAR10Dataset

        _fixed_size("CIFAR-10", image_size)
        return CIFAR10Dataset(arg, split, augment=augment, seed=seed)
    if kind == "fashion-mnist":
        from dsp_deploy.data.fashion_mnist import SIZE, FashionMNISTDataset

        _fixed_size("Fashion-MNIST", image_size, SIZE)
        path, limit = _fashion_arg(arg)
        return FashionMNISTDataset(path, split, augment=augment, seed=seed, limit=limit)
    from dsp_deploy.data.imagefolder import ImageFolderDataset

    root = Path(arg).expanduser()
    return ImageFolderDataset(image_folder_split(root, split), image_size=image_size or 224,
                              augment=augment, seed=seed, name=root.name)


def dataset_info(name_or_path: str, *, image_size: int | None = None, split: str = "train") -> DatasetInfo:
    """DatasetInfo without loading images (ImageFolder: lists the class folders only)."""
    _check_split(split)
    kind, arg = _parse(name_or_path)
    if kind == "synthetic":
        from dsp_deploy.data.info import SYNTHETIC_INFO

        _fixed_size("synthetic", image_size)
        return SYNTHETIC_INFO
    if kind == "cifar10":
        from dsp_deploy.data.info import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD

        _fixed_size("CIFAR-10", image_size)
        if not Path(arg).expanduser().exists():
            raise DataError(f"CIFAR-10 folder '{arg}' does not exist")
        return DatasetInfo("cifar10", 10, 32, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES)
    if kind == "fashion-mnist":
        from dsp_deploy.data.fashion_mnist import SIZE, resolve_folder
        from dsp_deploy.data.info import FASHION_MNIST_INFO

        _fixed_size("Fashion-MNIST", image_size, SIZE)
        resolve_folder(_fashion_arg(arg)[0])
        return FASHION_MNIST_INFO
    from dsp_deploy.data.imagefolder import is_hidden

    root = Path(arg).expanduser()
    class_root = image_folder_split(root, split)
    try:
        classes = sorted(e.name for e in os.scandir(class_root) if e.is_dir() and not is_hidden(e.name))
    except OSError as exc:
        raise DataError(f"cannot list '{class_root}': {exc.strerror or exc}") from None
    if not classes:
        raise DataError(f"no class folders in '{class_root}' (expected '{class_root}/<class_name>/<image files>')")
    return DatasetInfo(root.name, len(classes), image_size or 224, IMAGENET_MEAN, IMAGENET_STD, tuple(classes))
