"""CIFAR-10 batches: real pickle format, restricted unpickling, normalisation, augmentation."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from datapipe_helpers import write_cifar_folder

from dsp_deploy.data import build_dataset
from dsp_deploy.data.cifar import CIFAR10Dataset, load_cifar10, safe_unpickle
from dsp_deploy.data.info import CIFAR10_MEAN, CIFAR10_STD
from dsp_deploy.errors import DataError


def test_loads_python2_batches(cifar_dir: tuple[Path, dict]) -> None:
    folder, written = cifar_dir
    images, labels = load_cifar10(folder, "train")
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(20, 3072), written["train"][0])
    np.testing.assert_array_equal(labels, written["train"][1])
    test_images, test_labels = load_cifar10(folder, "test")
    assert test_images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(test_labels, written["test"][1])


@pytest.mark.parametrize("style", ["proto2", "proto5"])
def test_loads_python3_pickles(tmp_path: Path, style: str) -> None:
    written = write_cifar_folder(tmp_path / "c", style=style)
    images, labels = load_cifar10(tmp_path / "c", "train")
    np.testing.assert_array_equal(images.reshape(-1, 3072), written["train"][0])
    np.testing.assert_array_equal(labels, written["train"][1])


def test_dataset_samples_and_normalisation(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    blob = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    data = blob[b"data"].copy()
    data[0, 0], data[0, 1024], data[0, 2048 + 33] = 255, 0, 128  # R(0,0), G(0,0), B(1,1)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": blob[b"labels"]}))
    # the parent folder is accepted too, and a bare path is auto-detected as CIFAR
    ds = build_dataset(str(tmp_path), "test", augment=False, seed=0)
    assert isinstance(ds, CIFAR10Dataset) and isinstance(ds, torch.utils.data.Dataset)
    assert len(ds) == 4 and ds.info.num_classes == 10 and ds.info.input_shape == (3, 32, 32)
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == blob[b"labels"][0]
    assert image[0, 0, 0].item() == pytest.approx((1.0 - CIFAR10_MEAN[0]) / CIFAR10_STD[0], abs=1e-5)
    assert image[1, 0, 0].item() == pytest.approx((0.0 - CIFAR10_MEAN[1]) / CIFAR10_STD[1], abs=1e-5)
    assert image[2, 1, 1].item() == pytest.approx((128 / 255 - CIFAR10_MEAN[2]) / CIFAR10_STD[2], abs=1e-5)
    assert ds.targets == list(blob[b"labels"])


def test_train_augmentation_is_seeded_crop_and_flip(cifar_dir: tuple[Path, dict]) -> None:
    folder, _ = cifar_dir
    plain = build_dataset(f"cifar10:{folder}", "train", augment=False, seed=0)
    aug_a = build_dataset(f"cifar10:{folder}", "train", augment=True, seed=3)
    aug_b = build_dataset(f"cifar10:{folder}", "train", augment=True, seed=3)
    for i in range(len(plain)):
        assert torch.equal(aug_a[i][0], aug_b[i][0])
        assert aug_a[i][1] == plain[i][1]
    assert any(not torch.equal(aug_a[i][0], plain[i][0]) for i in range(len(plain)))
    # every augmented image is a (possibly mirrored) shifted window of the original, zero-padded
    zero = torch.tensor([-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)]).view(3, 1, 1)
    x, original = aug_a[0][0], plain[0][0]
    padded = zero.expand(3, 40, 40).clone()
    padded[:, 4:36, 4:36] = original
    windows = [padded[:, t:t + 32, s:s + 32] for t in range(9) for s in range(9)]
    assert any(torch.allclose(x, w) or torch.allclose(x, w.flip(-1)) for w in windows)
    first = [aug_a[i][0] for i in range(len(aug_a))]
    aug_a.set_epoch(1)
    assert any(not torch.equal(first[i], aug_a[i][0]) for i in range(len(aug_a)))


def test_malicious_pickle_is_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2.*refusing to load global '(posix|os)\.system'"):
        build_dataset(f"cifar10:{folder}", "train", augment=False, seed=0)
    assert not marker.exists()
    (folder / "test_batch").write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(DataError, match="builtins.eval"):
        safe_unpickle(folder / "test_batch")


def test_malformed_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_folder(folder)
    (folder / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="test_batch.*not a valid CIFAR-10 batch"):
        load_cifar10(folder, "test")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"test_batch.*\(N, 3072\)"):
        load_cifar10(folder, "test")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(DataError, match="2 images but 1 labels"):
        load_cifar10(folder, "test")
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4' is missing"):
        load_cifar10(folder, "train")


def test_missing_or_wrong_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"'{missing}' does not exist"):
        build_dataset(f"cifar10:{missing}", "train", augment=False, seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is not a CIFAR-10 batches folder"):
        build_dataset(f"cifar10:{tmp_path / 'empty'}", "train", augment=False, seed=0)
    with pytest.raises(DataError, match="32x32"):
        build_dataset(f"cifar10:{tmp_path / 'empty'}", "train", image_size=64, augment=False, seed=0)
