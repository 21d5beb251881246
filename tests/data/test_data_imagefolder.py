"""ImageFolder trees: class mapping, Pillow/numpy transforms, seeded augmentation, bad files."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from datapipe_helpers import write_image
from PIL import Image

from dsp_deploy.data import build_dataset, build_loader, dataset_info
from dsp_deploy.data.imagefolder import ImageFolderDataset
from dsp_deploy.data.info import IMAGENET_MEAN, IMAGENET_STD
from dsp_deploy.data.transforms import center_crop, random_resized_crop, resize_shorter
from dsp_deploy.errors import DataError

MakeTree = Callable[..., Path]


def _denormalise(x: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return np.rint(((x * std + mean) * 255).numpy()).astype(np.int64)


def test_class_mapping_and_eval_transform(image_tree: MakeTree) -> None:
    root = image_tree()
    ds = build_dataset(str(root), "val", image_size=24, augment=False, seed=0)
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["ant", "cat", "dog"] and ds.info.num_classes == 3
    assert len(ds) == 7 and ds.targets == [0, 0, 1, 1, 1, 2, 2]
    assert [Path(p).name for p, _ in ds.samples[:2]] == ["img0.png", "img1.JPEG"]
    image, label = ds[2]
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32 and label == 1
    assert dataset_info(str(root), image_size=24).classes == ("ant", "cat", "dog")


def test_eval_is_resize_shorter_then_center_crop(tmp_path: Path) -> None:
    # shorter side already equals the resize size (27 = 24 * 256/224): only the centre crop acts
    arr = write_image(tmp_path / "r" / "a" / "x.png", (40, 27), seed=1)
    ds = build_dataset(str(tmp_path / "r"), "val", image_size=24, augment=False, seed=0)
    top, left = round((27 - 24) / 2), round((40 - 24) / 2)
    expected = arr[top:top + 24, left:left + 24].transpose(2, 0, 1)
    np.testing.assert_array_equal(_denormalise(ds[0][0]), expected)
    img = Image.new("RGB", (300, 200))
    assert resize_shorter(img, 256).size == (384, 256)
    assert center_crop(resize_shorter(img, 256), 224).size == (224, 224)


def test_random_resized_crop_full_image_when_scale_and_ratio_are_one() -> None:
    arr = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    out = random_resized_crop(Image.fromarray(arr), 16, np.random.default_rng(0), scale=(1, 1), ratio=(1, 1))
    np.testing.assert_array_equal(np.asarray(out), arr)
    sizes = {random_resized_crop(Image.fromarray(arr), 8, np.random.default_rng(s)).size for s in range(5)}
    assert sizes == {(8, 8)}


def test_train_augmentation_seeded(image_tree: MakeTree) -> None:
    root = image_tree()
    a = build_dataset(str(root), "train", image_size=16, augment=True, seed=5)
    b = build_dataset(str(root), "train", image_size=16, augment=True, seed=5)
    c = build_dataset(str(root), "train", image_size=16, augment=True, seed=6)
    xs = [a[i][0] for i in range(len(a))]
    assert all(x.shape == (3, 16, 16) for x in xs)
    assert all(torch.equal(xs[i], b[i][0]) for i in range(len(a)))
    assert any(not torch.equal(xs[i], c[i][0]) for i in range(len(a)))
    a.set_epoch(1)
    assert any(not torch.equal(xs[i], a[i][0]) for i in range(len(a)))
    a.set_epoch(0)
    assert all(torch.equal(xs[i], a[i][0]) for i in range(len(a)))


def test_split_folders(image_tree: MakeTree, tmp_path: Path) -> None:
    image_tree("net/train", {"a": 1, "b": 1, "c": 1})
    image_tree("net/val", {"a": 1, "b": 1})
    assert len(build_dataset(str(tmp_path / "net"), "train", image_size=8, augment=False, seed=0)) == 3
    val = build_dataset(f"imagefolder:{tmp_path / 'net'}", "test", image_size=8, augment=False, seed=0)
    assert len(val) == 2 and val.info.name == "net"
    image_tree("only/train", {"a": 1})
    with pytest.raises(DataError, match=r"no 'val' folder in '.*only' \(found: train\)"):
        build_dataset(str(tmp_path / "only"), "val", augment=False, seed=0)


def test_non_image_files_are_skipped_with_warning(image_tree: MakeTree, caplog: pytest.LogCaptureFixture) -> None:
    root = image_tree()
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING, logger="dsp_deploy.data"):
        ds = build_dataset(str(root), "train", image_size=8, augment=False, seed=0)
    assert len(ds) == 7
    assert "notes.txt" in caplog.text and "1 non-image file" in caplog.text and "DS_Store" not in caplog.text


def test_corrupt_image_names_the_file(image_tree: MakeTree) -> None:
    root = image_tree("bad", {"a": 1, "b": 1})
    bad = root / "b" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage, not a JPEG")
    ds = build_dataset(str(root), "train", image_size=8, augment=True, seed=0)
    with pytest.raises(DataError, match=r"cannot decode image '.*broken\.jpg'"):
        ds[1]
    loader = build_loader(ds, 2, shuffle=False, workers=2, distributed=False, seed=0, drop_last=False)
    with pytest.raises(DataError) as info:
        list(loader)
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot decode image") and "broken.jpg" in message


def test_empty_and_missing_folders(tmp_path: Path, image_tree: MakeTree) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(DataError, match="dataset '.*missing' not found"):
        build_dataset(str(missing), "train", augment=False, seed=0)
    with pytest.raises(DataError, match=f"image folder '{missing}' does not exist"):
        build_dataset(f"imagefolder:{missing}", "train", augment=False, seed=0)
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(DataError, match="no class folders in"):
        build_dataset(str(tmp_path / "empty_root"), "train", augment=False, seed=0)
    root = image_tree("r", {"a": 1})
    (root / "zz_empty").mkdir()
    (root / "zz_empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"class folder '.*zz_empty' contains no images"):
        build_dataset(str(root), "train", augment=False, seed=0)
