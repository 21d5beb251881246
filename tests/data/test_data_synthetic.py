"""The built-in synthetic dataset: deterministic, balanced, learnable but not linearly trivial."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dsp_deploy.data import DatasetInfo, build_dataset, dataset_info
from dsp_deploy.data.info import SYNTHETIC_MEAN, SYNTHETIC_STD
from dsp_deploy.data.synthetic import SyntheticDataset, generate
from dsp_deploy.errors import DataError


def test_deterministic_given_seed() -> None:
    a = build_dataset("synthetic:300", "train", augment=False, seed=1)
    b = build_dataset("synthetic:300", "train", augment=False, seed=1)
    c = build_dataset("synthetic:300", "train", augment=False, seed=2)
    test = build_dataset("synthetic:300", "test", augment=False, seed=1)
    assert isinstance(a, SyntheticDataset) and isinstance(a, torch.utils.data.Dataset)
    x, label = a[7]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and label == 7
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(0, 300, 17))
    assert not torch.equal(a[7][0], c[7][0]) and not torch.equal(a[7][0], test[7][0])
    # sample i does not depend on the dataset size (generated per index chunk)
    big, _ = generate(1100, seed=1)
    np.testing.assert_array_equal(big[:300], a.images)


def test_defaults_balance_and_statistics() -> None:
    train = build_dataset("synthetic", "train", augment=False, seed=0)
    test = build_dataset("synthetic", "test", augment=False, seed=0)
    assert (len(train), len(test)) == (5000, 1000)
    assert np.bincount(train.targets).tolist() == [500] * 10
    assert np.bincount(test.targets).tolist() == [100] * 10
    info = dataset_info("synthetic")
    assert info == train.info and info.num_classes == 10 and info.input_shape == (3, 32, 32)
    assert DatasetInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    pixels = train.images.astype(np.float64) / 255
    np.testing.assert_allclose(pixels.mean(axis=(0, 2, 3)), SYNTHETIC_MEAN, atol=0.01)
    np.testing.assert_allclose(pixels.std(axis=(0, 2, 3)), SYNTHETIC_STD, atol=0.01)


def _nearest_class_mean(train: np.ndarray, ytrain: np.ndarray, test: np.ndarray, ytest: np.ndarray) -> float:
    means = np.stack([train[ytrain == c].mean(0) for c in range(10)])
    dist = (test ** 2).sum(1)[:, None] - 2 * test @ means.T + (means ** 2).sum(1)[None]
    return float((dist.argmin(1) == ytest).mean())


def _power_spectrum(images: np.ndarray) -> np.ndarray:
    grey = images.astype(np.float32).mean(1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    return np.log1p(np.abs(np.fft.rfft2(grey)) ** 2).reshape(len(images), -1)


def test_learnable_but_not_pixel_trivial() -> None:
    xtr, ytr = generate(2000, seed=0, split="train")
    xte, yte = generate(1000, seed=0, split="test")
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255  # noqa: E731
    pixel_acc = _nearest_class_mean(flat(xtr), ytr, flat(xte), yte)
    # a translation-invariant nonlinear feature (the power spectrum) separates the classes
    spectrum_acc = _nearest_class_mean(_power_spectrum(xtr), ytr, _power_spectrum(xte), yte)
    assert 0.12 < pixel_acc < 0.5, pixel_acc
    assert spectrum_acc > 0.8, spectrum_acc


def test_augmentation_is_a_seeded_shift_without_flip() -> None:
    plain = build_dataset("synthetic:20", "train", augment=False, seed=0)
    aug = build_dataset("synthetic:20", "train", augment=True, seed=0)
    again = build_dataset("synthetic:20", "train", augment=True, seed=0)
    zero = torch.tensor([-m / s for m, s in zip(SYNTHETIC_MEAN, SYNTHETIC_STD)]).view(3, 1, 1)
    shifts = set()
    for i in range(len(plain)):
        x, original = aug[i][0], plain[i][0]
        assert torch.equal(x, again[i][0]) and aug[i][1] == plain[i][1]
        padded = zero.expand(3, 40, 40).clone()
        padded[:, 4:36, 4:36] = original
        match = [(t, s) for t in range(9) for s in range(9) if torch.allclose(x, padded[:, t:t + 32, s:s + 32])]
        assert match, f"augmented sample {i} is not a padded shift of the original"
        shifts.add(match[0])
    assert len(shifts) > 5


def test_bad_specs() -> None:
    with pytest.raises(DataError, match="32x32"):
        build_dataset("synthetic", "train", image_size=64, augment=False, seed=0)
    with pytest.raises(DataError, match="positive integer"):
        build_dataset("synthetic:many", "train", augment=False, seed=0)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        build_dataset("synthetic", "dev", augment=False, seed=0)
    with pytest.raises(DataError, match="needs a path"):
        build_dataset("cifar10", "train", augment=False, seed=0)
