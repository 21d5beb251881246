"""build_loader: multi-worker loading, determinism across worker counts and epochs, sharding."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dsp_deploy.data import build_dataset, build_loader
from dsp_deploy.data.loader import ShardSampler
from dsp_deploy.errors import DataError, UsageError


def _epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[(x, y) for x, y in loader])
    return torch.cat(xs), torch.cat(ys)


def test_two_workers_match_in_process_loading() -> None:
    ds = build_dataset("synthetic:100", "train", augment=True, seed=0)
    kwargs = dict(shuffle=True, distributed=False, seed=11, drop_last=False)
    multi = build_loader(ds, 16, workers=2, **kwargs)
    single = build_loader(ds, 16, workers=0, **kwargs)
    assert len(multi) == 7
    x2, y2 = _epoch(multi)
    x0, y0 = _epoch(single)
    assert x2.shape == (100, 3, 32, 32) and x2.dtype == torch.float32
    assert sorted(y2.tolist()) == sorted(ds.targets)
    assert torch.equal(y2, y0) and torch.equal(x2, x0)  # same order, same augmentations
    assert y2.tolist() != ds.targets  # shuffled


def test_epochs_reshuffle_and_resume() -> None:
    ds = build_dataset("synthetic:60", "train", augment=True, seed=0)
    loader = build_loader(ds, 8, shuffle=True, workers=0, distributed=False, seed=3, drop_last=True)
    assert len(loader) == 7
    x_first, y_first = _epoch(loader)
    x_second, y_second = _epoch(loader)  # auto-advanced to epoch 1
    assert not torch.equal(y_first, y_second)
    loader.set_epoch(0)
    x_again, y_again = _epoch(loader)
    assert torch.equal(y_first, y_again) and torch.equal(x_first, x_again)
    other_seed = build_loader(ds, 8, shuffle=True, workers=0, distributed=False, seed=4, drop_last=True)
    assert not torch.equal(_epoch(other_seed)[1], y_first)
    eval_loader = build_loader(ds, 8, shuffle=False, workers=0, distributed=False, seed=3, drop_last=False)
    assert _epoch(eval_loader)[1].tolist() == ds.targets


def test_distributed(tmp_path: Path) -> None:
    ds = build_dataset("synthetic:30", "test", augment=False, seed=0)
    with pytest.raises(DataError, match="initialised torch.distributed"):
        build_loader(ds, 4, shuffle=True, workers=0, distributed=True, seed=0, drop_last=False)
    assert list(ShardSampler(10, 1, 3)) == [1, 4, 7] and len(ShardSampler(10, 0, 3)) == 4
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        train = build_loader(ds, 4, shuffle=True, workers=0, distributed=True, seed=0, drop_last=False)
        assert type(train.sampler).__name__ == "DistributedSampler"
        assert sorted(_epoch(train)[1].tolist()) == sorted(ds.targets)
        evaluation = build_loader(ds, 4, shuffle=False, workers=0, distributed=True, seed=0, drop_last=False)
        assert isinstance(evaluation.sampler, ShardSampler)
        assert _epoch(evaluation)[1].tolist() == ds.targets
    finally:
        dist.destroy_process_group()


def test_bad_options() -> None:
    ds = build_dataset("synthetic:10", "test", augment=False, seed=0)
    with pytest.raises(UsageError, match="batch size"):
        build_loader(ds, 0, shuffle=False, workers=0, distributed=False, seed=0, drop_last=False)
    with pytest.raises(UsageError, match="workers"):
        build_loader(ds, 2, shuffle=False, workers=-1, distributed=False, seed=0, drop_last=False)


def test_package_import_is_torch_free() -> None:
    code = ("import sys, dsp_deploy.data; from dsp_deploy.data import build_dataset, dataset_info, DatasetInfo; "
            "print(dataset_info('synthetic').num_classes, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["10", "False"]
