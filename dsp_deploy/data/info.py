"""What a model needs to know about a dataset (classes, input size, normalisation), torch-free."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# Synthetic dataset (dsp_deploy.data.synthetic): class c = stripes at (c % 5) * 36 degrees, period
# 4 px (c < 5) or 7 px; per-channel statistics measured on 20k generated images.
SYNTHETIC_CLASSES: tuple[str, ...] = tuple(f"stripes{(c % 5) * 36:03d}deg_p{4 if c < 5 else 7}" for c in range(10))
SYNTHETIC_MEAN: tuple[float, float, float] = (0.5036, 0.5028, 0.4990)
SYNTHETIC_STD: tuple[float, float, float] = (0.2103, 0.2135, 0.2121)


@dataclass(frozen=True)
class DatasetInfo:
    """Dataset facts the model factory and exporters need: class count, input size, mean/std.

    ``mean``/``std`` are per RGB channel on the 0..1 scale; images leave the datasets already
    normalised with them, so deployment code must apply the same values.
    """

    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, ...]  # one value per image channel
    std: tuple[float, ...]
    classes: tuple[str, ...] = field(default=())
    channels: int = 3

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the images a model receives."""
        return (self.image_size, self.image_size)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one sample tensor."""
        return (self.channels, self.image_size, self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for checkpoints and reports)."""
        data = asdict(self)
        data["mean"], data["std"], data["classes"] = list(self.mean), list(self.std), list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetInfo":
        """Inverse of `to_dict` (e.g. when reading a checkpoint's metadata)."""
        return cls(name=str(data["name"]), num_classes=int(data["num_classes"]),
                   image_size=int(data["image_size"]), mean=tuple(data["mean"]), std=tuple(data["std"]),
                   classes=tuple(data.get("classes", ())), channels=int(data.get("channels", 3)))


# Fashion-MNIST (dsp_deploy.data.fashion_mnist): greyscale 28x28; mean/std of the 60k training images.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
FASHION_MNIST_INFO = DatasetInfo("fashion-mnist", 10, 28, (0.2860,), (0.3530,), FASHION_MNIST_CLASSES, channels=1)

SYNTHETIC_INFO = DatasetInfo("synthetic", 10, 32, SYNTHETIC_MEAN, SYNTHETIC_STD, SYNTHETIC_CLASSES)
