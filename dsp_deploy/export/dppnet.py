"""Export of DPPNet checkpoints: plain graph with DPPConv pseudo-nodes -> BatchNorm folding of
the plain convs -> LowerDPPConv (see passes/lower_dpp.py) -> ONNX with a dynamic batch axis,
checked (onnx.checker, parity with the torch model at batch 1, 3 and 8 from the one file)
before the file and its plan JSON are written atomically."""
from __future__ import annotations

import logging
import os
from typing import Any

from dsp_deploy.checkpoint import Checkpoint
from dsp_deploy.errors import UnsupportedLayerError, UsageError
from dsp_deploy.export.graph import Graph
from dsp_deploy.export.plan import LoweringPlan, PassResult

log = logging.getLogger(__name__)

DPP_PARITY_BATCHES = (1, 3, 8)
_DPP_ATTRS = ("kernel_size", "stride", "padding", "patterns", "in_channels", "out_channels")


def check_dpp_module(model: Any, model_name: str) -> None:
    """UnsupportedLayerError naming the layer if a DPP conv differs from the registry's (geometry,
    pattern count, attention temperature) or the model holds layers a DPPNet does not have."""
    from dsp_deploy.export.torch_check import check_module
    from dsp_deploy.models import create
    from dsp_deploy.models.dpp import dpp_convs

    check_module(model, model_name)
    reference = dict(dpp_convs(create(model_name, num_classes=model.fc.out_features)))
    for name, conv in dpp_convs(model):
        expected = reference[name]
        for attr in _DPP_ATTRS:
            if getattr(conv, attr) != getattr(expected, attr):
                raise UnsupportedLayerError(f"DPPConv2d with {attr}={getattr(conv, attr)} (expected "
                                            f"{getattr(expected, attr)}) cannot be lowered", layer=name)
        if conv.attention.temperature != expected.attention.temperature:
            raise UnsupportedLayerError(f"attention temperature {conv.attention.temperature} (expected "
                                        f"{expected.attention.temperature}) cannot be lowered", layer=name)


def dpp_weights(model: Any) -> dict[str, Any]:
    """The state_dict as numpy arrays plus each DPP conv's masks as torch computes them."""
    import torch

    from dsp_deploy.models.dpp import dpp_convs

    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, conv in dpp_convs(model):
            weights[f"{name}.pattern_mask"] = conv.pattern_mask().detach().cpu().numpy()
    return weights


def lower_dppnet_graph(checkpoint: Checkpoint, model: Any) -> tuple[Graph, list[PassResult]]:
    """The lowered graph of a DPPNet model and its passes' reports."""
    from dsp_deploy.export.build import build_plain_graph
    from dsp_deploy.export.passes import FoldBatchNorm
    from dsp_deploy.export.passes.lower_dpp import LowerDPPConv
    from dsp_deploy.models import get_config, topology

    structure = checkpoint.structure
    topo = topology(checkpoint.model, structure.num_classes, structure.input_size)
    graph = build_plain_graph(topo, dpp_weights(model), structure,
                              stem_pool=get_config(checkpoint.model).family == "imagenet")
    return graph, [FoldBatchNorm().run(graph), LowerDPPConv().run(graph)]


def export_dppnet(checkpoint: Checkpoint, model: Any, out_path: str | os.PathLike[str], *, fp16: bool, opset: int,
                  parity: bool):
    """Export a DPPNet (batch axis dynamic); returns an export.exporter.ExportResult."""
    from dsp_deploy.export.exporter import parity_check, write_export

    if fp16:
        raise UsageError("--fp16 is not supported for DPPNet exports yet (float32 only)")
    check_dpp_module(model, checkpoint.model)
    graph, passes = lower_dppnet_graph(checkpoint, model)
    plan = LoweringPlan("dppnet", {}, notes={"model": checkpoint.model, "opset": opset, "fp16": False,
                                     "lowering": "DPP convs: attention + kernel aggregation over the pattern "
                                                 "union + im2col batched MatMul (passes/lower_dpp.py)"},
                        passes=passes)
    meta = {"dsp_deploy.model": checkpoint.model, "dsp_deploy.lowering": "dppnet"}
    parity_fn = (lambda blob: parity_check(blob, model, tuple(checkpoint.structure.input_size), fp16=False,
                                           batches=DPP_PARITY_BATCHES)) if parity else None
    return write_export(graph, opset, meta, out_path, plan, checkpoint.model, parity_fn)
