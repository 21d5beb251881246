"""TensorRT engine stage: ONNX -> strongly typed TensorRT network -> plan + JSON manifest.

Works with standard ``tensorrt`` (preferred when importable) or ``tensorrt_rtx`` (TensorRT for
RTX, whose ahead-of-time build needs no GPU). Importing this package is cheap: TensorRT, onnx
and torch are imported only inside the functions that use them.

Lazy loaders in the style of Polygraphy compose the steps::

    parsed = NetworkFromOnnx("model.onnx")()
    plan = EngineBytesFromNetwork(parsed, profile=BatchProfile(1, 8, 32))()

``build_engine`` does the whole job (and writes files atomically); ``engine_from_checkpoint``
first exports a checkpoint with the lowering chosen for TensorRT; ``parse_onnx_network`` just
parses and summarizes; ``TrtRunner`` runs a plan where a GPU is present.
"""
from __future__ import annotations

from dsp_deploy.engines.build import build_engine
from dsp_deploy.engines.from_checkpoint import engine_from_checkpoint
from dsp_deploy.runtime.trt_build import (
    DEFAULT_BATCH,
    BatchProfile,
    EngineBytesFromNetwork,
    inspect_engine_layers,
    parse_batch_range,
    parse_targets,
)
from dsp_deploy.runtime.trt_flavour import FLAVOURS, trt_module
from dsp_deploy.runtime.trt_manifest import EngineManifest, manifest_path_for
from dsp_deploy.runtime.trt_network import (
    LayerInfo,
    NetworkFromOnnx,
    NetworkSummary,
    ParsedNetwork,
    TensorInfo,
    parse_onnx_network,
)
from dsp_deploy.runtime.trt_runner import TrtRunner

__all__ = [
    "DEFAULT_BATCH",
    "FLAVOURS",
    "BatchProfile",
    "EngineBytesFromNetwork",
    "EngineManifest",
    "LayerInfo",
    "NetworkFromOnnx",
    "NetworkSummary",
    "ParsedNetwork",
    "TensorInfo",
    "TrtRunner",
    "build_engine",
    "engine_from_checkpoint",
    "inspect_engine_layers",
    "manifest_path_for",
    "parse_batch_range",
    "parse_onnx_network",
    "parse_targets",
    "trt_module",
]
