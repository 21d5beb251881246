"""The plain graph: the masked dense model exactly as PyTorch computes it, node for node.

Conv (no bias) -> BatchNormalization -> Relu for every conv, Add + Relu at the end of each
residual block, MaxPool after the ImageNet stem, GlobalAveragePool -> Flatten -> Gemm. Each
node carries the model layer it implements, and the graph's pass context holds the topology and
the per-conv structure, so the passes that follow can lower each conv as its structure allows.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dsp_deploy.errors import UnsupportedLayerError
from dsp_deploy.export.graph import Graph, ValueInfo
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, ROLE_DOWNSAMPLE, ROLE_INNER, ROLE_STEM, Topology
from dsp_deploy.structure import ModelStructure

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BN_EPS = 1e-5


def _weight(weights: Mapping[str, np.ndarray], key: str, layer: str) -> np.ndarray:
    try:
        return np.asarray(weights[key], dtype=np.float32)
    except KeyError:
        raise UnsupportedLayerError(f"no weight '{key}' in the state_dict", layer=layer) from None


def _dpp_conv(graph: Graph, x: str, spec, weights: Mapping[str, np.ndarray]):
    """The DPPConv pseudo-node of a DPPNet conv (lowered by passes/lower_dpp.py); ``weights`` must
    hold ``<layer>.pattern_mask`` (the masks as the torch model computes them)."""
    from dsp_deploy.export.passes.lower_dpp import DPP_OP
    from dsp_deploy.models.dpp import TEMPERATURE

    keys = ("weight", "pattern_mask", "attention.fc1.weight", "attention.fc2.weight", "attention.fc2.bias")
    values = [_weight(weights, f"{spec.name}.{key}", spec.name) for key in keys]
    if values[0].shape[1:] != (spec.out_channels, spec.in_channels, spec.kernel_size, spec.kernel_size):
        raise UnsupportedLayerError(f"DPP weight shape {values[0].shape} does not match the model", layer=spec.name)
    inputs = [x] + [graph.const(v, f"{spec.name}.{key}") for key, v in zip(keys, values)]
    return graph.add(DPP_OP, inputs, layer=spec.name, name=spec.name, attrs={
        "stride": spec.stride, "padding": spec.padding, "out_size": list(spec.output_size),
        "temperature": TEMPERATURE})


def _conv_bn(graph: Graph, x: str, spec, weights: Mapping[str, np.ndarray], relu: bool) -> str:
    if f"{spec.name}.threshold" in weights:
        return _bn_relu(graph, _dpp_conv(graph, x, spec, weights), spec, weights, relu)
    w = _weight(weights, f"{spec.name}.weight", spec.name)
    if w.shape != (spec.out_channels, spec.in_channels, spec.kernel_size, spec.kernel_size):
        raise UnsupportedLayerError(f"weight shape {w.shape} does not match the model", layer=spec.name)
    inputs = [x, graph.const(w, f"{spec.name}.weight")]
    if f"{spec.name}.bias" in weights:
        inputs.append(graph.const(_weight(weights, f"{spec.name}.bias", spec.name), f"{spec.name}.bias"))
    pad = spec.padding
    conv = graph.add("Conv", inputs, layer=spec.name, name=spec.name, attrs={
        "kernel_shape": [spec.kernel_size] * 2, "strides": [spec.stride] * 2, "pads": [pad] * 4, "group": 1})
    return _bn_relu(graph, conv, spec, weights, relu)


def _bn_relu(graph: Graph, conv, spec, weights: Mapping[str, np.ndarray], relu: bool) -> str:
    bn_params = [graph.const(_weight(weights, f"{spec.bn}.{k}", spec.bn), f"{spec.bn}.{k}")
                 for k in ("weight", "bias", "running_mean", "running_var")]
    bn = graph.add("BatchNormalization", [conv.outputs[0], *bn_params], layer=spec.name, name=spec.bn,
                   attrs={"epsilon": BN_EPS})
    if not relu:
        return bn.outputs[0]
    return graph.add("Relu", bn.outputs, layer=spec.name, name=f"{spec.name}.relu").outputs[0]


def build_plain_graph(topo: Topology, weights: Mapping[str, np.ndarray], structure: ModelStructure,
                      *, stem_pool: bool) -> Graph:
    """Graph of the (masked, dense) model; ``weights`` are numpy arrays keyed like the state_dict."""
    h, w = topo.input_size
    graph = Graph([ValueInfo(INPUT_NAME, "float32", ("batch", topo.in_channels, h, w))],
                  [ValueInfo(OUTPUT_NAME, "float32", ("batch", topo.num_classes))])
    graph.context.topology = topo
    graph.context.structure = {layer.name: layer for layer in structure.layers}
    current: dict[str, str] = {}       # stream ref -> tensor holding it now
    identity: dict[str, str] = {}      # block -> downsample output
    inner: dict[str, str] = {}         # conv name -> its activated output
    for spec in topo.convs:
        if spec.role == ROLE_STEM:
            x = _conv_bn(graph, INPUT_NAME, spec, weights, relu=True)
            if stem_pool:
                x = graph.add("MaxPool", [x], layer=spec.name, name=f"{spec.name}.maxpool", attrs={
                    "kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}).outputs[0]
            current[spec.writes] = x  # type: ignore[index]
            continue
        source = current[spec.reads] if spec.reads.startswith("stream:") else inner[spec.reads]
        if spec.role == ROLE_DOWNSAMPLE:
            identity[spec.block] = _conv_bn(graph, source, spec, weights, relu=False)  # type: ignore[index]
        elif spec.role == ROLE_INNER:
            inner[spec.name] = _conv_bn(graph, source, spec, weights, relu=True)
            if spec.reads.startswith("stream:"):
                identity.setdefault(spec.block, source)  # type: ignore[arg-type]
        elif spec.role == ROLE_BLOCK_OUT:
            y = _conv_bn(graph, source, spec, weights, relu=False)
            add = graph.add("Add", [y, identity.pop(spec.block)], layer=spec.name,  # type: ignore[arg-type]
                            name=f"{spec.block}.add")
            out = graph.add("Relu", add.outputs, layer=spec.name, name=f"{spec.block}.relu")
            current[spec.writes] = out.outputs[0]  # type: ignore[index]
        else:
            raise UnsupportedLayerError(f"conv role '{spec.role}' cannot be exported", layer=spec.name)
    last = current[f"stream:{topo.streams[-1].name}"]
    pooled = graph.add("GlobalAveragePool", [last], layer=topo.fc, name="avgpool").outputs[0]
    flat = graph.add("Flatten", [pooled], layer=topo.fc, name="flatten", attrs={"axis": 1}).outputs[0]
    fc_w = _weight(weights, f"{topo.fc}.weight", topo.fc)
    fc_b = _weight(weights, f"{topo.fc}.bias", topo.fc)
    graph.add("Gemm", [flat, graph.const(fc_w, "fc.weight"), graph.const(fc_b, "fc.bias")], layer=topo.fc,
              name=topo.fc, attrs={"transB": 1}, output=OUTPUT_NAME)
    return graph
