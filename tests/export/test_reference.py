"""Acceptance on the authors' checkpoints: import-reference -> export matches torch.jit.load(SRC)
within 1e-4 at batch 1 and 5; --lowering grouped gives grouped Convs fed by Gather/Slice, and
TensorRT for RTX parses the file with those group counts."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dsp_deploy.export import export_onnx
from dsp_deploy.reference import import_authors_checkpoint

from .test_exporter import assert_grouped_form
from support.authors_format import write_authors_checkpoint


def assert_matches_torchscript(onnx_path, src):
    scripted = torch.jit.load(str(src), map_location="cpu")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        with torch.no_grad():
            ref = scripted(torch.from_numpy(x.copy())).numpy()
        out = session.run(None, {"input": x})[0]
        assert np.abs(out - ref).max() < 1e-4


def trt_groups(path):
    pytest.importorskip("tensorrt_rtx")
    from dsp_deploy.engines import parse_onnx_network

    return sorted(g for g in parse_onnx_network(path, flavour="tensorrt_rtx").conv_groups.values())


@pytest.mark.parametrize("name", ["resnet20_g4.pt", "resnet56_g2.pt"])
def test_shipped_checkpoints(tmp_path, reference_dir, name):
    src = reference_dir / name
    checkpoint = import_authors_checkpoint(str(src))
    out = tmp_path / "grouped.onnx"
    export_onnx(checkpoint, out, lowering="grouped")
    assert_matches_torchscript(out, src)
    assert_grouped_form(out, checkpoint.structure)
    expected = sorted(len([g for g in range(l.groups) if l.group_filters(g)]) for l in checkpoint.structure.layers)
    assert trt_groups(out) == expected


def test_shipped_g4_auto(tmp_path, reference_dir):
    src = reference_dir / "resnet20_g4.pt"
    out = tmp_path / "auto.onnx"
    export_onnx(import_authors_checkpoint(str(src)), out, lowering="auto", plan_batches=(1,), runs=3,
                cache_path=str(tmp_path / "cache.json"))
    assert_matches_torchscript(out, src)


@pytest.mark.parametrize("depth, groups, lowering", [(20, 2, "grouped"), (20, 3, "union"), (56, 4, "grouped"),
                                                      (56, 3, "branches")])
def test_other_authors_checkpoints(tmp_path, depth, groups, lowering):
    src = write_authors_checkpoint(str(tmp_path / "a.pt"), depth, groups, seed=depth + groups)
    checkpoint = import_authors_checkpoint(src)
    out = tmp_path / "m.onnx"
    export_onnx(checkpoint, out, lowering=lowering)
    assert_matches_torchscript(out, src)
    if lowering == "grouped":
        assert_grouped_form(out, checkpoint.structure)
