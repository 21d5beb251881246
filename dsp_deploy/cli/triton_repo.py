"""`dsp-deploy triton-repo`: a Triton model repository from ONNX files and/or TensorRT engines."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.serving.repository import RepoOptions, build_repository


def _floats(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"'{text}' is not three comma-separated numbers") from None
    if len(values) != 3:
        raise UsageError(f"'{text}' is not three comma-separated numbers")
    return values  # type: ignore[return-value]


def add_parser(subparsers: Any) -> None:
    """Register the `triton-repo` subcommand."""
    parser = subparsers.add_parser(
        "triton-repo",
        help="write a Triton model repository (config.pbtxt + model file per model) from ONNX files/engines",
        description="Each MODEL becomes NAME/config.pbtxt and NAME/1/model.onnx|model.plan with dynamic "
        "batching; every config is parsed back with Triton's model-config protobuf and checked against the "
        "model before the repository is written (as a whole, atomically).",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="ONNX file or .engine/.plan with its JSON manifest; NAME=PATH sets the model name")
    parser.add_argument("--out", required=True, metavar="REPO", help="repository folder (replaced)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="max_batch_size for ONNX models (engines use their profile's max; default %(default)s)")
    parser.add_argument("--queue-delay-us", type=int, default=1000,
                        help="dynamic batching max queue delay in microseconds (default %(default)s)")
    parser.add_argument("--instances", type=int, default=1, help="instances per model (default %(default)s)")
    parser.add_argument("--gpu", action="store_true", help="instance_group KIND_GPU (default KIND_CPU)")
    parser.add_argument("--labels", type=Path, default=None, metavar="FILE",
                        help="labels file (one class per line) attached to each model's first output")
    parser.add_argument("--preprocess", action="store_true",
                        help="also write NAME_preprocess (uint8 HWC image -> normalised float NCHW) and the "
                        "ensemble NAME_image chaining it in front of the model")
    parser.add_argument("--mean", type=_floats, default=None, help="R,G,B mean on the 0..1 scale "
                        "(default: the model family's dataset, CIFAR-10 or ImageNet)")
    parser.add_argument("--std", type=_floats, default=None, help="R,G,B std on the 0..1 scale")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the repository; prints one line per model."""
    if args.max_batch < 0 or args.instances < 1 or args.queue_delay_us < 0:
        raise UsageError("--max-batch must be >= 0, --instances >= 1, --queue-delay-us >= 0")
    if args.labels is not None and not args.labels.is_file():
        raise UsageError(f"{args.labels}: no such labels file")
    options = RepoOptions(max_batch=args.max_batch, queue_delay_us=args.queue_delay_us, instances=args.instances,
                          gpu=args.gpu, labels=args.labels, preprocess=args.preprocess, mean=args.mean, std=args.std)
    names = build_repository(args.models, args.out, options)
    print(f"wrote {args.out}: {', '.join(names)}")
    return 0
