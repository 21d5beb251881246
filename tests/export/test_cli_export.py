"""`dsp-deploy export` end to end: files written on success; one-line errors and no files on bad input."""
from __future__ import annotations

import json

import pytest
import torch

from dsp_deploy.checkpoint import save_checkpoint
from dsp_deploy.cli.main import main

from .helpers import tiny_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, tiny_checkpoint("resnet20", groups=2, size=16, seed=7))
    return path


def one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dsp-deploy export: error:")
    return err[0]


def test_grouped_export_writes_onnx_and_plan(tmp_path, ckpt, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--lowering", "grouped"]) == 0
    text = capsys.readouterr().out
    assert "lowering plan (grouped" in text and "parity max |diff|" in text
    assert json.loads((tmp_path / "m.onnx.plan.json").read_text())["mode"] == "grouped"


def test_profile_and_explicit_option(tmp_path, ckpt):
    out = tmp_path / "h.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--profile", "tensorrt-fp16", "--lowering", "union"]) == 0
    plan = json.loads((tmp_path / "h.onnx.plan.json").read_text())
    assert plan["mode"] == "union" and plan["notes"]["fp16"] is True


def test_dense_model_for_comparison(tmp_path):
    out = tmp_path / "d.onnx"
    assert main(["export", "--model", "resnet20", "--out", str(out), "--lowering", "dense"]) == 0
    assert out.is_file()


@pytest.mark.parametrize("content", [None, b"garbage, not a checkpoint"])
def test_missing_or_corrupt_checkpoint(tmp_path, capsys, content):
    src = tmp_path / "in.pt"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out" / "m.onnx"
    assert main(["export", str(src), "--out", str(out)]) == 1
    assert str(src) in one_line_error(capsys)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_checkpoint_with_a_layer_it_cannot_lower(tmp_path, capsys):
    ck = tiny_checkpoint("resnet20", groups=2, size=16, seed=8)
    ck.state_dict["layer1.0.se.fc.weight"] = torch.zeros(4, 16)
    path = tmp_path / "odd.pt"
    save_checkpoint(path, ck)
    assert main(["export", str(path), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "layer1.0.se.fc.weight" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.pt"]


def test_bad_options(tmp_path, ckpt, capsys):
    assert main(["export", str(ckpt), "--model", "resnet20", "--out", str(tmp_path / "m.onnx")]) == 2
    one_line_error(capsys)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--profile", "nope"]) == 2
    assert "nope" in one_line_error(capsys)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--opset", "9"]) == 2
    one_line_error(capsys)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--channel-multiple", "0"]) == 2
    assert "channel multiple" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []
