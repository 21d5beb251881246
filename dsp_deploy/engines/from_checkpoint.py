"""Checkpoint -> TensorRT engine in one call: export with the lowering chosen for TensorRT (the
``tensorrt-fp16``/``tensorrt-fp32`` export profile), then ``build_engine``.

The ONNX and its plan land beside the engine (``M.engine`` -> ``M.onnx``, ``M.onnx.plan.json``,
``M.engine.json``). If the build fails, the ONNX and plan written for it are removed again, so a
failed command leaves none of the four files.
"""
from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy.engines.build import build_engine
from dsp_deploy.errors import UsageError
from dsp_deploy.runtime.trt_build import parse_batch_range
from dsp_deploy.runtime.trt_manifest import EngineManifest

if TYPE_CHECKING:
    from dsp_deploy.checkpoint import Checkpoint
    from dsp_deploy.export import ExportResult

log = logging.getLogger(__name__)

PRECISIONS = {"fp16": "float16", "fp32": "float32"}
PROFILES = {"fp16": "tensorrt-fp16", "fp32": "tensorrt-fp32"}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar")


def check_precision(precision: str) -> str:
    """``fp16``/``fp32``; ``UsageError`` for anything else (``int4`` ...)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: not supported (choose {' or '.join(PRECISIONS)})")
    return precision


def is_checkpoint_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``build`` should treat ``path`` as a checkpoint (else it is read as ONNX)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return False
    return path.suffix.lower() in CHECKPOINT_SUFFIXES or (path.is_file() and zipfile.is_zipfile(path))


def load_any_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """A dsp-deploy checkpoint, or the DSP authors' TorchScript release converted on the fly
    (as ``dsp-deploy import-reference`` does, outputs verified against the original)."""
    from dsp_deploy.checkpoint import is_torchscript, load_checkpoint

    if is_torchscript(path):
        from dsp_deploy.reference.authors import import_authors_checkpoint, verify_import

        checkpoint = import_authors_checkpoint(os.fspath(path))
        verify_import(os.fspath(path), checkpoint)
        log.info("converted the authors' TorchScript %s (as `dsp-deploy import-reference` does)", path)
        return checkpoint
    return load_checkpoint(path)


@dataclass
class CheckpointBuild:
    """What ``engine_from_checkpoint`` produced."""

    export: ExportResult
    manifest: EngineManifest
    onnx_path: Path


def engine_from_checkpoint(
    checkpoint: str | os.PathLike[str] | Checkpoint,
    out_path: str | os.PathLike[str],
    *,
    precision: str = "fp16",
    batch: Sequence[int] | str | None = None,
    flavour: str | None = None,
    **build_options: Any,
) -> CheckpointBuild:
    """Export ``checkpoint`` for TensorRT beside ``out_path`` and build the engine there.

    ``batch`` (MIN,OPT,MAX; default 1,1,32) is the engine's profile; the TensorRT planner (where
    it can measure) times blocks at OPT and MAX. ``build_options`` go to ``build_engine``.
    """
    from dsp_deploy.export import export_onnx, plan_path_for
    from dsp_deploy.export.options import ExportOptions

    check_precision(precision)
    opt_level = build_options.get("opt_level")
    if opt_level is not None and not 0 <= opt_level <= 5:  # checked before the (long) export
        raise UsageError(f"--opt-level {opt_level}: must be 0..5")
    low, opt, high = parse_batch_range(batch) if batch is not None else (1, 1, 32)
    out = Path(out_path)
    if out.suffix.lower() == ".onnx":
        raise UsageError(f"--out {out}: give the engine path (the ONNX is written beside it as {out.stem}.onnx)")
    onnx_path = out.with_suffix(".onnx")
    source = checkpoint if not isinstance(checkpoint, (str, os.PathLike)) else load_any_checkpoint(checkpoint)
    options = ExportOptions.from_profile(PROFILES[precision], plan_batches=sorted({opt, high}))
    result = export_onnx(source, onnx_path, flavour=flavour, **options.kwargs())
    try:
        manifest = build_engine(onnx_path, out, batch=(low, opt, high), flavour=flavour,
                                precision=PRECISIONS[precision], **build_options)
    except BaseException:
        onnx_path.unlink(missing_ok=True)
        plan_path_for(onnx_path).unlink(missing_ok=True)
        raise
    return CheckpointBuild(result, manifest, onnx_path)
