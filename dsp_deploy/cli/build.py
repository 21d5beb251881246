"""`dsp-deploy build model.onnx --out model.engine`: ONNX -> TensorRT plan + manifest, or
`dsp-deploy build CHECKPOINT --out model.engine [--precision fp16|fp32]`: export with the lowering
chosen for TensorRT, then build (the ONNX and its plan land beside the engine).

Thin wrapper over :func:`dsp_deploy.engines.build_engine` and
:func:`dsp_deploy.engines.from_checkpoint.engine_from_checkpoint`; TensorRT is imported only when
the command runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dsp_deploy.engines import build_engine, parse_batch_range, parse_targets
from dsp_deploy.engines.from_checkpoint import PRECISIONS, check_precision, engine_from_checkpoint, is_checkpoint_path
from dsp_deploy.engines.lowering import describe


def add_parser(subparsers: Any) -> None:
    """Register the ``build`` subcommand."""
    parser = subparsers.add_parser(
        "build",
        help="build a TensorRT engine (plan + JSON manifest) from a checkpoint or an ONNX file",
        description=(
            "Build a strongly typed TensorRT engine (precision = the ONNX types) with an optimization "
            "profile over the batch axis, and write MODEL.engine.json next to it. Uses `tensorrt` if "
            "importable, else `tensorrt_rtx` (TensorRT for RTX builds ahead of time without a GPU). "
            "From a checkpoint (.pt; also the DSP authors' TorchScript release) it first exports "
            "MODEL.onnx with the lowering chosen for TensorRT (measured as small engines where a GPU "
            "is present, else the default grouped lowering, marked 'not measured')."
        ),
    )
    parser.add_argument("onnx", metavar="CHECKPOINT_OR_ONNX",
                        help="dsp-deploy checkpoint (.pt) or ONNX file (batch axis dynamic, other dims fixed)")
    parser.add_argument("--precision", metavar="fp16|fp32",
                        help="engine precision: from a checkpoint the export precision (default fp16); "
                             "for an ONNX input it must match the ONNX's types")
    parser.add_argument("-o", "--out", help="output plan (default: the ONNX path with .engine)")
    parser.add_argument(
        "--batch",
        metavar="MIN,OPT,MAX",
        help="batch range of the optimization profile (default 1,1,32; one number = fixed batch)",
    )
    parser.add_argument(
        "--target",
        metavar="CC[,CC...]",
        help="TensorRT for RTX target compute capabilities, e.g. sm89,sm120 or 8.6 "
        "(default: its portable Ampere-and-later build; Turing needs sm75 explicitly)",
    )
    parser.add_argument("--timing-cache", metavar="FILE", help="timing cache to read/update (standard TensorRT)")
    parser.add_argument("--opt-level", type=int, metavar="N", help="builder optimization level 0..5")
    parser.add_argument(
        "--flavour",
        choices=("auto", "tensorrt", "tensorrt_rtx"),
        default="auto",
        help="which TensorRT to use (default: tensorrt if importable, else tensorrt_rtx)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Parse the options, build, print a one-line summary."""
    precision = check_precision(args.precision) if args.precision is not None else None
    batch = parse_batch_range(args.batch) if args.batch else None
    targets = parse_targets(args.target)
    out = Path(args.out) if args.out else Path(args.onnx).with_suffix(".engine")
    options = dict(targets=targets, timing_cache=args.timing_cache, opt_level=args.opt_level)
    if is_checkpoint_path(args.onnx):
        built = engine_from_checkpoint(args.onnx, out, precision=precision or "fp16", batch=batch,
                                       flavour=args.flavour, **options)
        manifest = built.manifest
        print(f"exported {built.onnx_path} + {built.export.plan_path.name} for TensorRT")
    else:
        manifest = build_engine(args.onnx, out, batch=batch, flavour=args.flavour,
                                precision=PRECISIONS[precision] if precision else None, **options)
    grouped = sum(g > 1 for g in manifest.conv_groups.values())
    print(
        f"{out} ({manifest.engine_bytes} bytes) + {out.name}.json: {manifest.flavour} {manifest.version}, "
        f"{manifest.precision}, batch {manifest.batch['min']},{manifest.batch['opt']},{manifest.batch['max']}, "
        f"targets {','.join(manifest.targets)}, {len(manifest.conv_groups)} convs ({grouped} grouped); "
        f"{describe(manifest.lowering_plan)}"
    )
    return 0
