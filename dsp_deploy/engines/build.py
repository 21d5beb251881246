"""`build_engine`: ONNX file -> TensorRT plan + JSON manifest (``runtime.trt_engine``), with the
export's lowering plan beside the ONNX recorded in the manifest.

A plan made for another backend (``dsp-deploy export`` plans for ONNX Runtime CPU by default)
still builds, with one warning saying how to plan for TensorRT.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from dsp_deploy.engines.lowering import foreign_plan_warning, plan_record
from dsp_deploy.runtime.trt_engine import build_engine as build_engine_file
from dsp_deploy.runtime.trt_manifest import EngineManifest

log = logging.getLogger(__name__)


def build_engine(onnx_path: str | os.PathLike[str], out_path: str | os.PathLike[str], **options: Any) -> EngineManifest:
    """Build ``onnx_path`` into ``out_path`` + ``<out_path>.json`` (options: see
    ``runtime.trt_engine.build_engine``); the manifest records the lowering plan of the ONNX."""

    def lowering(flavour: str) -> dict | None:
        record = plan_record(onnx_path)
        warning = foreign_plan_warning(record, onnx_path, flavour)
        if warning:
            log.warning(warning)
        return record

    return build_engine_file(onnx_path, out_path, lowering_plan=lowering, **options)
