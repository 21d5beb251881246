"""Small models for the export tests (random DSP structures, tiny checkpoints, one-conv graphs) and
``check_pass``, the check every pass test makes: outputs unchanged in ONNX Runtime, node counts."""
from __future__ import annotations

import numpy as np

from dsp_deploy.checkpoint import Checkpoint
from dsp_deploy.export.graph import Graph, ValueInfo
from dsp_deploy.export.measure import ort_session
from dsp_deploy.export.onnx_io import to_model
from dsp_deploy.export.passes import Pass, PassResult
from dsp_deploy.models import create, topology
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, ROLE_INNER, Topology
from dsp_deploy.structure import PRUNED, ConvStructure, ModelStructure, dense_structure, drop_dead_reads
from dsp_deploy.structure.validate import validate_structure


def random_layer(name: str, cin: int, cout: int, k: int, groups: int, rng: np.random.Generator, *,
                 keep: float = 0.5, pruned: float = 0.0, stride: int = 1) -> ConvStructure:
    """A group-pruned conv: random filter groups (each non-empty), random kept inputs per group."""
    assign = np.concatenate([np.arange(groups), rng.integers(0, groups, cout - groups)])
    rng.shuffle(assign)
    drop = rng.random(cout) < pruned
    assign[drop] = PRUNED
    inputs = [sorted(rng.choice(cin, max(1, int(round(keep * cin))), replace=False).tolist()) for _ in range(groups)]
    return ConvStructure(name, cin, cout, k, stride, groups, tuple(int(a) for a in assign), tuple(map(tuple, inputs)))


def random_structure(topo: Topology, groups: int, seed: int = 0, keep: float = 0.5) -> ModelStructure:
    """A valid random DSP structure: inner and block-output convs grouped (some with G=1),
    block outputs lose some filters; dead reads and unread filters are cleaned up."""
    rng = np.random.default_rng(seed)
    base = dense_structure(topo)
    updates = {}
    for spec in topo.convs:
        if spec.role not in (ROLE_INNER, ROLE_BLOCK_OUT):
            continue
        g = groups if rng.random() < 0.8 else 1
        updates[spec.name] = random_layer(spec.name, spec.in_channels, spec.out_channels, spec.kernel_size, g, rng,
                                          keep=keep, pruned=0.3 if spec.role == ROLE_BLOCK_OUT else 0.0,
                                          stride=spec.stride)
    structure = drop_dead_reads(base.with_layers(updates), topo)
    validate_structure(structure, topo)
    return structure


def random_net(model: str, seed: int = 0):
    """The dense model with random weights and BatchNorm statistics (so folding is exercised)."""
    import torch

    torch.manual_seed(seed)
    net = create(model)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net


def tiny_checkpoint(model: str = "resnet20", groups: int = 3, size: int = 16, seed: int = 0,
                    keep: float = 0.5) -> Checkpoint:
    """Random weights and BatchNorm statistics plus a random structure."""
    net = random_net(model, seed)
    topo = topology(model, input_size=(size, size))
    structure = random_structure(topo, groups, seed, keep)
    return Checkpoint(model, net.state_dict(), structure)


def l1_checkpoint(model: str = "resnet20", size: int = 16, reduction: float = 0.6, seed: int = 0) -> Checkpoint:
    """Random weights plus the L1 channel-pruning baseline's G=1 structure at ``reduction`` of
    the whole-model MACs (residual-stream channels pruned jointly by every producer)."""
    from dsp_deploy.baselines import l1_channel_prune
    from dsp_deploy.structure import count_costs

    net = random_net(model, seed)
    topo = topology(model, input_size=(size, size))
    target = int(count_costs(dense_structure(topo), topo).flops * (1 - reduction))
    structure = l1_channel_prune(topo, net.state_dict(), target).structure
    return Checkpoint(model, net.state_dict(), structure)


def masked_weight(layer: ConvStructure, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal((layer.out_channels, layer.in_channels, layer.kernel_size, layer.kernel_size))
    mask = np.zeros((layer.out_channels, layer.in_channels), bool)
    for g, chans in enumerate(layer.group_inputs):
        mask[np.ix_(list(layer.group_filters(g)), list(chans))] = True
    return (w * mask[:, :, None, None]).astype(np.float32)


def conv_graph(layer: ConvStructure, size: int = 6, seed: int = 0, relu: bool = True) -> Graph:
    """x -> Conv (masked weights, bias; layer ``layer.name``) -> [Relu] -> y."""
    rng = np.random.default_rng(seed)
    graph = Graph([ValueInfo("x", "float32", ("batch", layer.in_channels, size, size))],
                  [ValueInfo("y", "float32", ("batch", layer.out_channels, size, size))])
    graph.context.structure = {layer.name: layer}
    bias = rng.standard_normal(layer.out_channels).astype(np.float32)
    bias[[f for f, g in enumerate(layer.filter_groups) if g == PRUNED]] = 0
    k = layer.kernel_size
    conv = graph.add("Conv", ["x", graph.const(masked_weight(layer, rng)), graph.const(bias)], layer=layer.name,
                     attrs={"kernel_shape": [k, k], "pads": [k // 2] * 4, "strides": [layer.stride] * 2},
                     output=None if relu else "y")
    if relu:
        graph.add("Relu", conv.outputs, layer=layer.name, output="y")
    return graph


def outputs(graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    """Every output of ``graph`` for input ``x`` in ONNX Runtime (the real one, CPU)."""
    session = ort_session(to_model(graph).SerializeToString())
    return session.run(None, {graph.inputs[0].name: x})


def run(graph: Graph, x: np.ndarray) -> np.ndarray:
    return outputs(graph, x)[0]


def check_pass(graph: Graph, pass_: Pass, x: np.ndarray, *, counts: dict[str, int], rtol: float = 1e-5,
               atol: float = 1e-5) -> PassResult:
    """Run ``pass_`` on ``graph`` and assert what every pass promises: the same outputs in ONNX
    Runtime for input ``x`` (within ``rtol``/``atol``; 0 and 0 for passes that only move data),
    producer/consumer indexes equal to ones rebuilt from the nodes, and ``counts`` nodes per op
    afterwards. Returns the pass's report."""
    before = outputs(graph, x)
    result = pass_.run(graph)
    graph.check_index()
    assert ops(graph) == counts, f"nodes per op after {pass_.name}: {ops(graph)}"
    after = outputs(graph, x)
    assert len(after) == len(before)
    for new, old in zip(after, before):
        assert new.dtype == old.dtype and new.shape == old.shape
        np.testing.assert_allclose(new, old, rtol=rtol, atol=atol)
    return result


def ops(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[node.op] = counts.get(node.op, 0) + 1
    return counts


def sample(channels: int, size: int = 6, batch: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(np.float32)
