"""Bad input to train / prune / finetune: one-line error, non-zero exit, nothing written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TINY = ["--batch-size", "32", "--workers", "0", "--no-progress", "--epochs", "1"]


def _assert_one_line_failure(proc, *, code: int | None = None, needle: str = "") -> None:
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle.lower() in lines[0].lower(), lines[0]


def test_unknown_model(cli, tmp_path: Path) -> None:
    proc = cli("train", "--model", "resnet99", "--data", "synthetic:64", "--out", "RUN", *TINY, cwd=tmp_path)
    _assert_one_line_failure(proc, needle="unknown model 'resnet99'")
    assert not (tmp_path / "RUN").exists()


def test_missing_dataset_folder(cli, pipeline, tmp_path: Path) -> None:
    proc = cli("train", "--model", "resnet20", "--data", str(tmp_path / "no-such-dir"), "--out", "RUN", *TINY,
               cwd=tmp_path)
    _assert_one_line_failure(proc, needle="not found")
    proc = cli("finetune", str(pipeline["pruned"]), "--data", "cifar10:" + str(tmp_path / "nope"), "--out", "F.pt",
               *TINY, cwd=tmp_path)
    _assert_one_line_failure(proc, needle="does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["0", "1", "1.5", "-0.2", "60"])
def test_target_outside_unit_interval(cli, pipeline, tmp_path: Path, target: str) -> None:
    proc = cli("prune", str(pipeline["run"]), "--flops-reduction", target, "--out", "P.pt", cwd=tmp_path)
    _assert_one_line_failure(proc, code=2, needle="between 0 and 1")
    assert not (tmp_path / "P.pt").exists()


def test_checkpoint_of_another_architecture(cli, pipeline, tmp_path: Path) -> None:
    proc = cli("train", "--model", "resnet56", "--init", str(pipeline["run"] / "checkpoint.pt"), "--data",
               "synthetic:64", "--out", "RUN", *TINY, cwd=tmp_path)
    _assert_one_line_failure(proc, needle="resnet20 checkpoint, not resnet56")
    proc = cli("finetune", str(pipeline["pruned"]), "--recipe", "cifar10_resnet56",
               "--data", "synthetic:64", "--out", "F.pt", *TINY, cwd=tmp_path)
    _assert_one_line_failure(proc, needle="recipe is for resnet56")
    assert list(tmp_path.iterdir()) == []


def test_prune_without_groups_needs_groups_option(cli, tmp_path: Path) -> None:
    from dsp_deploy.checkpoint import dense_checkpoint, save_checkpoint
    from dsp_deploy.models import create

    save_checkpoint(tmp_path / "dense.pt", dense_checkpoint("resnet20", create("resnet20")))
    proc = cli("prune", "dense.pt", "--flops-reduction", "0.5", "--out", "P.pt", cwd=tmp_path)
    _assert_one_line_failure(proc, needle="--groups")
    assert not (tmp_path / "P.pt").exists()


def test_not_a_checkpoint(cli, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    proc = cli("prune", "junk.pt", "--flops-reduction", "0.5", "--out", "P.pt", cwd=tmp_path)
    _assert_one_line_failure(proc, needle="junk.pt")
    assert not (tmp_path / "P.pt").exists()


def _image_folder(root: Path, *, corrupt: bool, text_only_class: bool) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        folder = root / cls
        folder.mkdir(parents=True)
        if text_only_class and cls == "dog":
            (folder / "README.txt").write_text("no images here")
            continue
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        if corrupt:
            (folder / "broken.jpg").write_text("this is text, not a JPEG")


def test_non_image_files_in_image_folder(cli, tmp_path: Path) -> None:
    only_text = tmp_path / "only-text"
    _image_folder(only_text, corrupt=False, text_only_class=True)
    work = tmp_path / "work"
    work.mkdir()
    proc = cli("train", "--model", "resnet20", "--data", str(only_text), "--out", "RUN", *TINY, cwd=work)
    _assert_one_line_failure(proc, needle="no images")
    broken = tmp_path / "broken"
    _image_folder(broken, corrupt=True, text_only_class=False)
    proc = cli("train", "--model", "resnet20", "--data", str(broken), "--out", "RUN", *TINY, cwd=work)
    _assert_one_line_failure(proc, needle="broken.jpg")
    assert list(work.iterdir()) == []
