"""Image augmentations with Pillow + numpy (torchvision is not available), mirroring the
torchvision recipes the papers use, and normalisation to float32 CHW.

Every random choice takes an explicit ``numpy.random.Generator`` so a dataset can make the
augmentation of sample ``i`` a pure function of (seed, epoch, i), whatever the worker layout.
Arrays are uint8 CHW until `normalize`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


def pil_to_chw(img: Image.Image) -> np.ndarray:
    """An RGB PIL image as a contiguous uint8 (3, H, W) array."""
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))


def random_resized_crop(
    img: Image.Image,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
) -> Image.Image:
    """torchvision's RandomResizedCrop: a random area fraction in ``scale`` and aspect ratio in
    ``ratio`` (log-uniform), 10 tries, else a centred crop with the ratio clamped; bilinear."""
    width, height = img.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    box = None
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            box = (left, top, left + w, top + h)
            break
    if box is None:  # fallback: whole-image centre crop with the aspect ratio clamped
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            w, h = int(round(height * ratio[1])), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
        box = (left, top, left + w, top + h)
    return img.resize((size, size), Image.BILINEAR, box=box)


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` (torchvision Resize(int) rounding), bilinear."""
    width, height = img.size
    if min(width, height) == size:
        return img
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    return img.resize((new_w, new_h), Image.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Centre ``size`` x ``size`` crop (torchvision CenterCrop rounding); pads with black if smaller."""
    width, height = img.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return img.crop((left, top, left + size, top + size))  # PIL pads out-of-range areas with 0


def hflip(chw: np.ndarray) -> np.ndarray:
    """Mirror a (C, H, W) array left-right."""
    return np.ascontiguousarray(chw[:, :, ::-1])


def random_crop_padded(chw: np.ndarray, size: int, padding: int, rng: np.random.Generator) -> np.ndarray:
    """torchvision RandomCrop(size, padding): zero-pad every side by ``padding``, crop at random."""
    channels, height, width = chw.shape
    padded = np.zeros((channels, height + 2 * padding, width + 2 * padding), dtype=chw.dtype)
    padded[:, padding:padding + height, padding:padding + width] = chw
    top = int(rng.integers(0, height + 2 * padding - size + 1))
    left = int(rng.integers(0, width + 2 * padding - size + 1))
    return np.ascontiguousarray(padded[:, top:top + size, left:left + size])


def imagenet_train(img: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """Standard ImageNet training augmentation: random-resized-crop + horizontal flip (p=0.5)."""
    chw = pil_to_chw(random_resized_crop(img.convert("RGB"), size, rng))
    return hflip(chw) if rng.random() < 0.5 else chw


def imagenet_eval(img: Image.Image, size: int, resize: int) -> np.ndarray:
    """Standard ImageNet evaluation: shorter side to ``resize``, centre crop ``size``."""
    return pil_to_chw(center_crop(resize_shorter(img.convert("RGB"), resize), size))


def cifar_train(chw: np.ndarray, rng: np.random.Generator, *, flip: bool = True, padding: int = 4) -> np.ndarray:
    """Standard CIFAR training augmentation: random crop with zero padding 4, optional flip."""
    out = random_crop_padded(chw, chw.shape[-1], padding, rng)
    return hflip(out) if flip and rng.random() < 0.5 else out


def normalize(chw: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> "torch.Tensor":
    """uint8 (C, H, W) -> float32 torch tensor ``(x / 255 - mean) / std``."""
    import torch

    scale = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1) * np.float32(255.0)
    shift = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1) * np.float32(255.0)
    out = (chw.astype(np.float32) - shift) / scale
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
