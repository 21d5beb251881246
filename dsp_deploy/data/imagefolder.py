"""ImageFolder datasets (ImageNet layout: ``root/<class_name>/<image>``) decoded with Pillow.

Classes are the sorted sub-folder names (index = position), like torchvision, so label indices
match models trained with it. Files without an image extension are skipped with a warning;
a file with an image extension that does not decode is an error naming the file.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dsp_deploy.data.base import SeededDataset
from dsp_deploy.data.info import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo
from dsp_deploy.data.transforms import imagenet_eval, imagenet_train
from dsp_deploy.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)
_SHOWN_SKIPS = 3


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(sorted class names, [(file path, class index)]) for ``root/<class>/**/<image>``."""
    if not root.exists():
        raise DataError(f"image folder '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"cannot list '{root}': {exc.strerror or exc}") from None
    classes = [e.name for e in entries if e.is_dir() and not is_hidden(e.name)]
    if not classes:
        raise DataError(f"no class folders in '{root}' (expected '{root}/<class_name>/<image files>')")
    samples: list[tuple[str, int]] = []
    skipped: list[str] = []
    skipped += [e.path for e in entries if e.is_file() and not is_hidden(e.name)]
    for index, name in enumerate(classes):
        class_dir = root / name
        found = 0
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
            for fname in sorted(filenames):
                if is_hidden(fname):
                    continue
                path = os.path.join(dirpath, fname)
                if os.path.splitext(fname)[1].lower() in IMAGE_EXTENSIONS:
                    samples.append((path, index))
                    found += 1
                else:
                    skipped.append(path)
        if found == 0:
            raise DataError(f"class folder '{class_dir}' contains no images "
                            f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if skipped:
        shown = ", ".join(f"'{p}'" for p in skipped[:_SHOWN_SKIPS])
        more = f" and {len(skipped) - _SHOWN_SKIPS} more" if len(skipped) > _SHOWN_SKIPS else ""
        log.warning("skipping %d non-image file(s) in '%s': %s%s", len(skipped), root, shown, more)
    return classes, samples


def load_image(path: str) -> Image.Image:
    """Decode ``path`` to an RGB PIL image; DataError names the file when it cannot."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # convert() forces the full decode inside the try
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode image '{path}': {exc}") from None


class ImageFolderDataset(SeededDataset):
    """Images of ``root/<class>/``; train: random-resized-crop + flip, eval: resize + centre crop."""

    def __init__(self, root: str | Path, *, image_size: int = 224, resize_size: int | None = None,
                 augment: bool, seed: int, name: str | None = None) -> None:
        root = Path(root).expanduser()
        if image_size <= 0:
            raise DataError(f"image size must be positive, got {image_size}")
        self.root = root
        self.resize_size = resize_size or int(round(image_size * 256 / 224))
        if self.resize_size < image_size:
            raise DataError(f"resize size {self.resize_size} is smaller than the crop {image_size}")
        classes, self.samples = scan_image_folder(root)
        info = DatasetInfo(name or root.name, len(classes), image_size, IMAGENET_MEAN, IMAGENET_STD,
                           tuple(classes))
        super().__init__(info, augment=augment, seed=seed)
        log.info("image folder '%s': %d images in %d classes", root, len(self.samples), len(classes))

    def __len__(self) -> int:
        return len(self.samples)

    def label(self, index: int) -> int:
        return self.samples[index][1]

    @property
    def targets(self) -> list[int]:
        return [s[1] for s in self.samples]

    def raw(self, index: int, rng: np.random.Generator | None) -> np.ndarray:
        img = load_image(self.samples[index][0])
        if rng is not None:
            return imagenet_train(img, self.info.image_size, rng)
        return imagenet_eval(img, self.info.image_size, self.resize_size)
