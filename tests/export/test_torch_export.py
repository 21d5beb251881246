"""The torch export: the exporter's lowered graph as a compact nn.Module. Parity with ONNX Runtime
on the exported ONNX file and with ``load_model``, per lowering, for the authors' ResNet-56 g=2 and a
ResNet-50 G=2 structure; torch.export and dynamo capture; the safe file and the CLI."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dsp_deploy import load_model
from dsp_deploy.checkpoint import save_checkpoint
from dsp_deploy.cli.main import main
from dsp_deploy.errors import ExportError
from dsp_deploy.export import export_onnx, export_torch, load_lowered
from dsp_deploy.export.onnx_io import to_model
from dsp_deploy.export.torch_module import lowered_module, save_lowered
from dsp_deploy.reference import import_authors_checkpoint

from .helpers import tiny_checkpoint

LOWERINGS = ("grouped", "branches", "union", "dense")


def check_parity(module, onnx_path, ckpt_path, shape, batches=(1, 5)):
    """<= 1e-4 against ONNX Runtime on the exported file and against dsp_deploy.load_model."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = load_model(str(ckpt_path))
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
        with torch.no_grad():
            ours = module(torch.from_numpy(x)).numpy()
            ref = reference(torch.from_numpy(x)).numpy()
        assert np.abs(ours - session.run(None, {"input": x})[0]).max() <= 1e-4
        assert np.abs(ours - ref).max() <= 1e-4


def conv_weights(module):
    return {name: p for name, p in module.named_parameters() if p.dim() == 4}


@pytest.fixture(scope="module")
def r56(tmp_path_factory, reference_dir):
    path = tmp_path_factory.mktemp("r56") / "r56.pt"
    ckpt = import_authors_checkpoint(str(reference_dir / "resnet56_g2.pt"))
    save_checkpoint(path, ckpt)
    return ckpt, path


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    path = tmp_path_factory.mktemp("r50") / "r50.pt"
    ckpt = tiny_checkpoint("resnet50", groups=2, size=32, seed=3)
    save_checkpoint(path, ckpt)
    return ckpt, path


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_authors_resnet56_g2(tmp_path, r56, lowering):
    ckpt, path = r56
    export_onnx(ckpt, tmp_path / "m.onnx", lowering=lowering)
    module, _ = lowered_module(ckpt, lowering=lowering)
    check_parity(module, tmp_path / "m.onnx", path, (3, 32, 32))
    grouped = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert bool(grouped) == (lowering == "grouped") and all(m.groups == 2 for m in grouped)
    dense = sum(p.numel() for n, p in ckpt.state_dict.items() if n.endswith("weight") and p.dim() == 4)
    compact = sum(p.numel() for p in conv_weights(module).values())
    assert compact < dense if lowering != "dense" else compact == dense  # pruned weights physically gone


@pytest.mark.parametrize("lowering", [pytest.param(low, marks=[] if low == "grouped" else pytest.mark.slow)
                                      for low in LOWERINGS])
def test_resnet50_g2_structure(tmp_path, r50, lowering):
    ckpt, path = r50
    module, lowered = lowered_module(ckpt, lowering=lowering)  # lowered once: the ONNX file is its graph
    (tmp_path / "m.onnx").write_bytes(to_model(lowered.graph).SerializeToString())
    check_parity(module, tmp_path / "m.onnx", path, (3, 32, 32), batches=(2,))
    if lowering == "branches":  # one conv per group: more convs than the model has
        assert len(conv_weights(module)) > sum(1 for n in ckpt.state_dict if n.endswith("conv1.weight"))


@pytest.mark.slow
def test_torch_export_and_dynamo_capture():
    ckpt = tiny_checkpoint("resnet20", groups=2, size=16, seed=5)
    module, _ = lowered_module(ckpt, lowering="grouped")
    x = torch.randn(3, 3, 16, 16)
    program = torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    for batch in (1, 3, 7):
        xb = torch.randn(batch, 3, 16, 16)
        assert torch.allclose(program.module()(xb), module(xb), atol=1e-5)
    compiled = torch.compile(module, backend="eager", fullgraph=True)  # fullgraph: no graph break anywhere
    assert torch.allclose(compiled(x), module(x), atol=1e-5)


def test_save_load_roundtrip_and_fp16(tmp_path):
    ckpt = tiny_checkpoint("resnet20", groups=3, size=16, seed=2)
    out = tmp_path / "m.pt"
    result = export_torch(ckpt, out, lowering="branches")
    assert result.max_diff <= 1e-4 and (tmp_path / "m.pt.plan.json").is_file()
    loaded = load_lowered(out)
    module, _ = lowered_module(ckpt, lowering="branches")
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(loaded(x), module(x))
    assert loaded.spec["meta"]["lowering"] == "branches"
    half = load_lowered(out).half()
    assert half.ops[0].weight.dtype == torch.float16
    assert torch.allclose(half(x.half()).float(), module(x), atol=0.05, rtol=0.05)


def test_load_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ExportError, match="not a dsp-deploy torch export"):
        load_lowered(bad)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "dsp-deploy/torch-lowered", "obj": ExportError("x")}, evil)  # a non-tensor object
    with pytest.raises(ExportError, match="not a dsp-deploy torch export"):
        load_lowered(evil)
    good = tmp_path / "good.pt"
    save_lowered(lowered_module(tiny_checkpoint("resnet20", groups=2, size=16), lowering="grouped")[0], good)
    doc = torch.load(good, weights_only=True)
    doc["state"]["ops.0.weight"] = torch.zeros(1, 1, 1, 1)  # weights that do not fit the spec
    torch.save(doc, good)
    with pytest.raises(ExportError, match="malformed torch export"):
        load_lowered(good)


def test_cli_format_torch(tmp_path, capsys):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, tiny_checkpoint("resnet20", groups=2, size=16, seed=9))
    out = tmp_path / "m.torch.pt"
    assert main(["export", str(ckpt), "--out", str(out), "--lowering", "grouped", "--format", "torch"]) == 0
    assert "parity with ONNX Runtime" in capsys.readouterr().out
    assert load_lowered(out).spec["meta"]["model"] == "resnet20"
    assert main(["export", str(ckpt), "--out", str(tmp_path / "h.pt"), "--format", "torch", "--fp16"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fp16" in err[0] and not (tmp_path / "h.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("lowering", ("grouped", "branches"))
def test_cuda_graphs_and_inductor_on_gpu(lowering):
    ckpt = tiny_checkpoint("resnet20", groups=2, size=16, seed=4)
    module, _ = lowered_module(ckpt, lowering=lowering)
    x = torch.randn(4, 3, 16, 16)
    expected = module(x)
    gpu = module.cuda().half().to(memory_format=torch.channels_last)
    static = x.cuda().half().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            gpu(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = gpu(static)
        graph.replay()
        assert torch.allclose(out.float().cpu(), expected, atol=0.05, rtol=0.05)
        compiled = torch.compile(gpu)
        assert torch.allclose(compiled(static).float().cpu(), expected, atol=0.05, rtol=0.05)
