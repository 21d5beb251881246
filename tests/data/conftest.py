"""Fixtures for the data-pipeline tests: a fake CIFAR-10 folder and ImageFolder trees."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pytest runs with --import-mode=importlib

from datapipe_helpers import write_cifar_folder, write_image


@pytest.fixture
def cifar_dir(tmp_path: Path) -> tuple[Path, dict]:
    """A ``cifar-10-batches-py`` folder of fake batches in the Python 2 format."""
    folder = tmp_path / "cifar-10-batches-py"
    return folder, write_cifar_folder(folder)


@pytest.fixture
def image_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make(root_name, classes={'cat': 2, ...})`` writes PNG/JPEG images per class."""

    def make(name: str = "imgs", classes: dict[str, int] | None = None) -> Path:
        root = tmp_path / name
        counts = classes if classes is not None else {"dog": 2, "cat": 3, "ant": 2}
        for c_index, (cls, count) in enumerate(counts.items()):
            for k in range(count):
                ext = ".png" if k % 2 == 0 else ".JPEG"
                write_image(root / cls / f"img{k}{ext}", (40 + 3 * k, 30 + 5 * c_index), seed=100 * c_index + k)
        return root

    return make
