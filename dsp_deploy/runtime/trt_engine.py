"""`build_engine`: ONNX file -> TensorRT plan + JSON manifest, both written atomically.

Everything that can fail (parse, build, inspection, manifest assembly) happens in memory first;
only then are the plan and the manifest written via temporary files, so a failed build leaves no
output files (and an older engine at the same path stays untouched).
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from dsp_deploy.errors import EngineBuildError, UsageError
from dsp_deploy.runtime.trt_build import (
    DEFAULT_BATCH,
    BatchProfile,
    EngineBytesFromNetwork,
    inspect_engine_layers,
    parse_batch_range,
    parse_targets,
)
from dsp_deploy.runtime.trt_manifest import EngineManifest, manifest_path_for
from dsp_deploy.runtime.trt_network import NetworkFromOnnx, TensorInfo
from dsp_deploy.utils.atomic import atomic_write
from dsp_deploy.utils.hashing import sha256_file

log = logging.getLogger(__name__)


def _io_entry(tensor: TensorInfo, shapes: dict | None = None) -> dict:
    entry = {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape)}
    if shapes and tensor.name in shapes:
        low, opt, high = shapes[tensor.name]
        entry["profile"] = {"min": list(low), "opt": list(opt), "max": list(high)}
    return entry


def build_engine(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    batch: Sequence[int] | str | None = None,
    targets: Sequence[str] | str | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    opt_level: int | None = None,
    flavour: str | None = None,
    inspect: bool = True,
    precision: str | None = None,
    lowering_plan: Callable[[str], dict | None] | None = None,
) -> EngineManifest:
    """Build ``onnx_path`` into ``out_path`` and write ``<out_path>.json``; returns the manifest.

    ``batch`` is (MIN, OPT, MAX) for input dim 0 (default 1,1,32 for a dynamic batch axis, the
    fixed size for a static one). ``targets`` are TensorRT-for-RTX compute capabilities
    (``["SM89", "SM120"]`` or ``"sm89,sm120"``; default: its portable Ampere-and-later build).
    ``timing_cache`` is read and updated for standard TensorRT. ``flavour`` forces
    ``tensorrt``/``tensorrt_rtx``. ``precision`` (``float16``/``float32``), when given, must be the
    ONNX's (engines are strongly typed). ``lowering_plan(flavour)``, when given, returns the
    manifest's ``lowering_plan`` record (the engine stage reads the export's plan file).
    Raises ``EngineBuildError``/``UsageError``; writes nothing then.
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if out_path.resolve() == onnx_path.resolve():
        raise UsageError(f"--out {out_path} would overwrite the ONNX input")
    target_names = parse_targets(targets)
    parsed = NetworkFromOnnx(onnx_path, flavour=flavour)()
    summary = parsed.summary()
    if precision is not None and summary.precision != precision:
        raise UsageError(f"{onnx_path.name} is {summary.precision}, not {precision}: engines take the ONNX's "
                         "types (re-export, or build from the checkpoint with --precision)")
    plan_info = lowering_plan(summary.flavour) if lowering_plan is not None else None
    if batch is None:  # default range for a dynamic batch axis, the fixed size for a static one
        static = [t.shape[0] for t in summary.inputs if t.shape and t.shape[0] > 0]
        batch = (static[0],) * 3 if static and len(static) == len(summary.inputs) else None
    low, opt, high = parse_batch_range(batch) if batch is not None else DEFAULT_BATCH
    profile = BatchProfile(low, opt, high)
    shapes = profile.resolve(summary.inputs)
    loader = EngineBytesFromNetwork(
        parsed, profile=profile, targets=target_names, timing_cache=timing_cache, opt_level=opt_level
    )
    plan = loader()
    engine_layers, note = inspect_engine_layers(parsed.module, plan) if inspect else (None, "not inspected")
    strongly_typed = True
    creation = parsed.module.NetworkDefinitionCreationFlag
    if hasattr(creation, "STRONGLY_TYPED"):
        strongly_typed = bool(parsed.network.get_flag(creation.STRONGLY_TYPED))
    manifest = EngineManifest(
        engine=out_path.name,
        engine_sha256=hashlib.sha256(plan).hexdigest(),
        engine_bytes=len(plan),
        flavour=summary.flavour,
        version=summary.version,
        source_onnx=str(onnx_path),
        source_onnx_sha256=sha256_file(onnx_path),
        precision=summary.precision,
        strongly_typed=strongly_typed,
        inputs=[_io_entry(t, shapes) for t in summary.inputs],
        outputs=[_io_entry(t) for t in summary.outputs],
        batch={"min": low, "opt": opt, "max": high},
        targets=loader.target_names(summary.flavour),
        conv_groups=summary.conv_groups,
        network_layers=[layer.to_dict() for layer in summary.layers],
        engine_layers=engine_layers,
        engine_layers_note=note,
        builder_optimization_level=opt_level,
        timing_cache=str(timing_cache) if timing_cache and summary.flavour == "tensorrt" else None,
        build_seconds=round(loader.build_seconds or 0.0, 3),
        lowering_plan=plan_info,
    )
    _write_outputs(out_path, plan, manifest.to_json())
    log.debug(
        "wrote %s (%d bytes) and %s: %s %s, %s, batch %d..%d, %d convs (%d grouped)",
        out_path, len(plan), manifest_path_for(out_path).name, summary.flavour, summary.version, summary.precision,
        low, high, len(summary.conv_groups), sum(g > 1 for g in summary.conv_groups.values()),
    )
    return manifest


def _write_outputs(out_path: Path, plan: bytes, manifest_text: str) -> None:
    """Write plan then manifest via temp files; the manifest only lands after the plan did, and a
    failure between the two renames removes the new plan again."""
    manifest_path = manifest_path_for(out_path)
    plan_done = False
    try:
        with atomic_write(manifest_path, "w") as manifest_file:
            manifest_file.write(manifest_text)
            with atomic_write(out_path) as plan_file:
                plan_file.write(plan)
            plan_done = True
    except BaseException as exc:
        if plan_done:
            out_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise EngineBuildError(f"cannot write {out_path} / {manifest_path.name}: {exc}") from None
        raise
