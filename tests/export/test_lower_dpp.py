"""DPPNet export: the LowerDPPConv pass on one conv (node counts, ONNX Runtime equality at several
batch sizes from one graph), a whole DPPNet ResNet-20 (parity, executed MACs = `info` FLOPs) and
the one-line refusals."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dsp_deploy.checkpoint import Checkpoint  # noqa: E402
from dsp_deploy.compare.onnx_cost import onnx_costs  # noqa: E402
from dsp_deploy.dppnet.costs import dppnet_costs  # noqa: E402
from dsp_deploy.errors import ExportError, UnsupportedLayerError  # noqa: E402
from dsp_deploy.export import export_onnx  # noqa: E402
from dsp_deploy.export.graph import Graph, ValueInfo  # noqa: E402
from dsp_deploy.export.passes.lower_dpp import DPP_OP, LowerDPPConv  # noqa: E402
from dsp_deploy.models import topology  # noqa: E402
from dsp_deploy.models.dpp import TEMPERATURE, DPPConv2d, set_random_patterns  # noqa: E402
from dsp_deploy.structure import dense_structure  # noqa: E402

from .helpers import ops, random_net, run  # noqa: E402


def _dpp_and_bn(stride: int) -> tuple[DPPConv2d, torch.nn.BatchNorm2d]:
    torch.manual_seed(0)
    conv = DPPConv2d(4, 6, 3, stride, 1)
    mask = torch.zeros(4, 3, 3)
    mask[0, 1, 1] = mask[1, 0, 1] = mask[2, 1, 1] = mask[2, 1, 2] = mask[3, 0, 1] = 1  # union: 3 taps
    conv.freeze(mask)
    bn = torch.nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return conv.eval(), bn


def _graph(conv: DPPConv2d, bn: torch.nn.BatchNorm2d, size: int) -> Graph:
    out = (size - 1) // conv.stride + 1
    g = Graph([ValueInfo("x", "float32", ("batch", 4, size, size))],
              [ValueInfo("y", "float32", ("batch", 6, out, out))])
    np_ = {k: v.detach().numpy() for k, v in conv.state_dict().items()}
    consts = [g.const(np_[k]) for k in ("weight", "fixed_mask", "attention.fc1.weight", "attention.fc2.weight",
                                        "attention.fc2.bias")]
    node = g.add(DPP_OP, ["x", *consts], layer="c", attrs={"stride": conv.stride, "padding": 1,
                                                         "out_size": [out, out], "temperature": TEMPERATURE})
    params = [g.const(t.detach().numpy()) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
    g.add("BatchNormalization", [node.outputs[0], *params], layer="c", attrs={"epsilon": bn.eps}, output="y")
    return g


@pytest.mark.parametrize("stride,layout", [(1, "nhwc"), (2, "nhwc"), (1, "nchw"), (2, "nchw")])
def test_single_dpp_conv_lowering_matches_torch_at_any_batch(stride: int, layout: str) -> None:
    conv, bn = _dpp_and_bn(stride)
    g = _graph(conv, bn, 6)
    if layout == "nchw":
        g.nodes[0].attrs["layout"] = "nchw"
    result = LowerDPPConv().run(g)  # the DPPConv pseudo-op has no ONNX Runtime kernel: checked against torch below
    assert result.applied == 1
    g.check_index()
    expected = {"GlobalAveragePool": 1, "Flatten": 1, "Gemm": 2, "Relu": 1, "Reshape": 4, "Softmax": 1,
                "MatMul": 2, "Pad": 1, "Slice": 3, "Concat": 1, "Add": 1}
    if layout == "nhwc":
        expected["Transpose"] = 3  # input to channels-last, kernel, output back to NCHW
    assert ops(g) == expected
    for batch in (1, 3, 8):
        x = np.random.default_rng(batch).standard_normal((batch, 4, 6, 6)).astype(np.float32)
        with torch.no_grad():
            ref = bn(conv(torch.from_numpy(x))).numpy()
        np.testing.assert_allclose(run(g, x), ref, rtol=1e-4, atol=1e-5)


def test_dpp_conv_without_batchnorm_is_refused_naming_the_layer() -> None:
    conv, _ = _dpp_and_bn(1)
    g = _graph(conv, _dpp_and_bn(1)[1], 6)
    bn = g.nodes[-1]
    g.add("Relu", [g.nodes[0].outputs[0]], output="extra")
    g.outputs.append(ValueInfo("extra", "float32", ("batch", 6, 6, 6)))
    assert bn.op == "BatchNormalization"
    with pytest.raises(ExportError, match="layer 'c'"):
        LowerDPPConv().run(g)


def _dppnet_checkpoint(size: int = 16) -> tuple[Checkpoint, torch.nn.Module]:
    net = random_net("dppnet-resnet20")
    set_random_patterns(net, taps=3)
    topo = topology("dppnet-resnet20", input_size=(size, size))
    return Checkpoint("dppnet-resnet20", net.state_dict(), dense_structure(topo)), net


def test_dppnet_resnet20_exports_batch_dynamic_with_the_promised_macs(tmp_path) -> None:
    ckpt, _ = _dppnet_checkpoint()
    result = export_onnx(ckpt, tmp_path / "dpp.onnx")
    assert sorted(result.parity_max_diff) == [1, 3, 8]
    assert result.max_diff < 1e-4
    assert result.node_counts["Conv"] == 3 and result.node_counts["MatMul"] == 36  # stem + 2 downsample
    assert [(p.name, p.applied) for p in result.passes] == [("fold-batchnorm", 3), ("lower-dpp", 18)]
    macs, moves = onnx_costs(tmp_path / "dpp.onnx")
    costs = dppnet_costs(ckpt.state_dict, topology("dppnet-resnet20", input_size=(16, 16)))
    assert macs == costs["flops"]
    assert macs < 0.4 * costs["dense_flops"]
    assert "Gather" not in moves


def test_dpp_conv_with_other_geometry_is_refused_naming_the_layer(tmp_path) -> None:
    _, net = _dppnet_checkpoint()
    net.layer2[1].conv1.attention.temperature = 1.0
    with pytest.raises(UnsupportedLayerError, match="layer2.1.conv1"):
        export_onnx(net, tmp_path / "x.onnx", model_name="dppnet-resnet20")
    net.layer2[1].conv1.attention.temperature = TEMPERATURE
    net.layer3[0].relu = torch.nn.GELU()
    with pytest.raises(UnsupportedLayerError, match="layer3.0.relu"):
        export_onnx(net, tmp_path / "x.onnx", model_name="dppnet-resnet20")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_of_a_dppnet_checkpoint_with_an_empty_layer_is_one_line(tmp_path, capsys) -> None:
    from dsp_deploy.checkpoint import save_checkpoint
    from dsp_deploy.cli.main import main

    ckpt, net = _dppnet_checkpoint()
    net.layer2[0].conv2.freeze(torch.zeros(4, 3, 3))
    ckpt.state_dict = net.state_dict()
    save_checkpoint(tmp_path / "d.pt", ckpt)
    assert main(["export", str(tmp_path / "d.pt"), "--out", str(tmp_path / "d.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layer 'layer2.0.conv2'" in err[0] and "mask is empty" in err[0], err
    assert not (tmp_path / "d.onnx").exists()
    assert main(["info", str(tmp_path / "d.pt")]) == 0
    assert "layer2.0.conv2" in capsys.readouterr().out
