"""Fashion-MNIST IDX reader: format checks on tiny files written here, splits, the real set when installed."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dsp_deploy.data import build_dataset, dataset_info
from dsp_deploy.data.fashion_mnist import DEBIAN_PATH, IMAGE_MAGIC, LABEL_MAGIC, holdout_split, read_idx
from dsp_deploy.errors import DataError

from support.idx import write_fashion_set as write_set
from support.idx import write_idx


def test_good_file_round_trips(tmp_path: Path) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    for name in ("a.gz", "b"):
        write_idx(tmp_path / name, images, IMAGE_MAGIC)
        assert np.array_equal(read_idx(tmp_path / name, IMAGE_MAGIC, (28, 28)), images)


@pytest.mark.parametrize("kind", ["magic", "truncated", "count", "shape", "gzip"])
def test_bad_files_are_one_line_errors(tmp_path: Path, kind: str) -> None:
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    path = tmp_path / "x.gz"
    if kind == "magic":
        write_idx(path, images, LABEL_MAGIC)
    elif kind == "truncated":
        write_idx(path, images, IMAGE_MAGIC, cut=100)
    elif kind == "count":
        write_idx(path, images, IMAGE_MAGIC, count=5)
    elif kind == "shape":
        write_idx(path, np.zeros((4, 32, 32), dtype=np.uint8), IMAGE_MAGIC)
    else:
        path.write_bytes(gzip.compress(b"\0" * 100)[:-10])
    with pytest.raises(DataError) as info:
        read_idx(path, IMAGE_MAGIC, (28, 28))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    expected = {"magic": "magic number", "truncated": "truncated", "count": "truncated", "shape": "shape",
                "gzip": "gzip"}[kind]
    assert expected in message


def test_label_count_mismatch(tmp_path: Path) -> None:
    write_set(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8), LABEL_MAGIC)
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        build_dataset(f"fashion-mnist:{tmp_path}", "test", augment=False, seed=0)


def test_split_is_disjoint_and_seeded() -> None:
    train, val = holdout_split(100, 10, seed=3)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    assert set(train) | set(val) == set(range(100))
    again, val_again = holdout_split(100, 10, seed=3)
    assert np.array_equal(val, val_again) and np.array_equal(train, again)
    assert not np.array_equal(holdout_split(100, 10, seed=4)[1], val)


def test_dataset_splits_and_shapes(tmp_path: Path) -> None:
    train_images, test_images = write_set(tmp_path)
    spec = f"fashion-mnist:{tmp_path}"
    info = dataset_info(spec)
    assert info.input_shape == (1, 28, 28) and info.num_classes == 10
    train = build_dataset(spec, "train", augment=False, seed=0)
    val = build_dataset(spec, "val", augment=False, seed=0)
    test = build_dataset(spec, "test", augment=False, seed=0)
    assert len(train) + len(val) == 60 and len(test) == 20
    train_rows = {img.tobytes() for img in train.images}
    assert not train_rows & {img.tobytes() for img in val.images}
    assert np.array_equal(test.images[:, 0], test_images)
    image, label = train[0]
    assert tuple(image.shape) == (1, 28, 28) and 0 <= label < 10
    assert len(build_dataset(f"{spec}@7", "train", augment=True, seed=0)) == 7
    assert tuple(build_dataset(spec, "train", augment=True, seed=1)[3][0].shape) == (1, 28, 28)


def test_folder_without_idx_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Fashion-MNIST IDX files"):
        dataset_info(f"fashion-mnist:{tmp_path}")
    write_set(tmp_path)
    assert dataset_info(str(tmp_path)).name == "fashion-mnist"  # a bare folder is auto-detected
    with pytest.raises(DataError, match="28x28"):
        dataset_info(f"fashion-mnist:{tmp_path}", image_size=32)


@pytest.mark.skipif(not DEBIAN_PATH.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_files() -> None:
    test = build_dataset("fashion-mnist", "test", augment=False, seed=0)
    val = build_dataset("fashion-mnist", "val", augment=False, seed=0)
    assert len(test) == 10000 and len(val) == 5000
    assert np.bincount(test.labels, minlength=10).tolist() == [1000] * 10
    assert abs(float(build_dataset("fashion-mnist@2000", "train", augment=False, seed=0)[5][0].mean())) < 3


def test_models_follow_the_dataset_input() -> None:
    import torch

    from dsp_deploy.models import create, topology
    from dsp_deploy.structure import count_costs, dense_structure

    topo = topology("resnet20", 10, (28, 28), in_channels=1)
    assert topo.in_channels == 1 and topo.convs[-1].output_size == (7, 7)
    assert dense_structure(topo).in_channels == 1
    assert count_costs(dense_structure(topo), topo).flops < count_costs(dense_structure(topology("resnet20")),
                                                                          topology("resnet20")).flops
    model = create("resnet20", 10, in_channels=1).eval()
    assert tuple(model(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)
