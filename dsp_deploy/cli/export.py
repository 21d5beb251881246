"""`dsp-deploy export CKPT --out model.onnx`: lower a group-pruned checkpoint to ONNX.

Thin wrapper over :func:`dsp_deploy.export.export_onnx`; heavy libraries load only when the
command runs. ``--model NAME`` (without CKPT) exports a dense model for comparison.
"""
from __future__ import annotations

import argparse
from typing import Any

from dsp_deploy.cli import as_flag
from dsp_deploy.errors import OptionError, UsageError
from dsp_deploy.export.options import ExportOptions


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes, got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got '{text}'")
    return values


def add_parser(subparsers: Any) -> None:
    """Register the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export", help="export a (group-pruned) checkpoint to ONNX with fast grouped-conv lowerings",
        description="Lower every group-pruned conv (Gather + grouped Conv, branches, union or dense), "
                    "check the graph (onnx.checker, parity with PyTorch at batch 1 and 5) and write "
                    "MODEL.onnx plus MODEL.onnx.plan.json. Nothing is written if a check fails.")
    parser.add_argument("checkpoint", nargs="?", help="dsp-deploy checkpoint (.pt); omit with --model")
    parser.add_argument("-o", "--out", required=True, help="output ONNX path")
    parser.add_argument("--lowering", choices=("auto", "grouped", "branches", "union", "dense"),
                        help="auto = chosen per block for the profile's backend (default: measured on ONNX Runtime "
                             "CPU; --profile tensorrt-fp16 plans for TensorRT); others force one lowering")
    parser.add_argument("--fp16", action="store_true", default=None,
                        help="float16 weights and activations (float32 I/O)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    parser.add_argument("--profile", help="preset shipped with dsp-deploy (cpu-ort, tensorrt-fp16, ...) or a JSON "
                                          "file; explicit options win")
    parser.add_argument("--model", help="export a dense model of this name instead of a checkpoint (e.g. resnet56)")
    parser.add_argument("--weights", help="with --model: a state_dict file (default: random init, seed 0)")
    parser.add_argument("--plan-batches", type=_batches, metavar="B[,B...]",
                        help="batch sizes the auto planner measures (default 1,32 for CIFAR, 1 for ImageNet)")
    parser.add_argument("--channel-multiple", type=int, metavar="N",
                        help="the target's channel alignment the auto planner pads candidates to (8: AVX2, "
                             "16: AVX-512; default: this machine's)")
    parser.add_argument("--cache", metavar="FILE",
                        help="planner timing cache (default ~/.cache/dsp-deploy/export-costs.json)")
    parser.add_argument("--no-cache", action="store_true", help="measure afresh, do not read or write the cache")
    parser.add_argument("--no-parity", action="store_true", help="skip the comparison with the PyTorch model")
    parser.add_argument("--format", choices=("onnx", "torch"), default="onnx",
                        help="onnx (default) or torch: the same lowered model as a compact torch module file "
                             "(spec + weights, read with dsp_deploy.export.load_lowered; no arbitrary pickle)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export and print a summary plus the plan table."""
    from dsp_deploy.export import export_onnx
    from dsp_deploy.export.measure import default_cache_path

    if bool(args.checkpoint) == bool(args.model):
        raise UsageError("give either a CHECKPOINT or --model NAME (not both)")
    if args.weights and not args.model:
        raise UsageError("--weights goes with --model")
    try:
        options = ExportOptions.from_profile(args.profile, lowering=args.lowering, fp16=args.fp16, opset=args.opset,
                                             plan_batches=args.plan_batches, channel_multiple=args.channel_multiple)
    except OptionError as exc:
        raise as_flag(exc) from None
    source: Any = args.checkpoint
    if args.model:
        import torch

        from dsp_deploy.models import create

        torch.manual_seed(0)
        source = create(args.model, weights=args.weights)
    cache = None if args.no_cache else (args.cache or str(default_cache_path()))
    if args.format == "torch":
        return _run_torch(args, source, options, cache)
    result = export_onnx(source, args.out, parity=not args.no_parity, model_name=args.model, cache_path=cache,
                         **options.kwargs())
    print(result.plan.table())
    parity = ", ".join(f"batch {b}: {d:.2e}" for b, d in result.parity_max_diff.items()) or "skipped"
    grouped = result.node_counts.get("Conv", 0)
    print(f"wrote {result.onnx_path} ({sum(result.node_counts.values())} nodes, {grouped} Conv, "
          f"{result.node_counts.get('Gather', 0)} Gather) and {result.plan_path}; parity max |diff| {parity}")
    return 0


def _run_torch(args: argparse.Namespace, source: Any, options: ExportOptions, cache: str | None) -> int:
    """``--format torch``: write the lowered torch module (no fp16/opset: cast with ``.half()`` after loading)."""
    from dsp_deploy.export.torch_module import export_torch

    if options.fp16:
        raise UsageError("--format torch writes float32 weights; call .half() on the loaded module instead of --fp16")
    kwargs = options.kwargs()
    result = export_torch(source, args.out, lowering=options.lowering, parity=not args.no_parity,
                          model_name=args.model, cache_path=cache, plan_batches=kwargs["plan_batches"],
                          channel_multiple=options.channel_multiple)
    print(result.plan.table())
    parity = ", ".join(f"batch {b}: {d:.2e}" for b, d in result.parity_max_diff.items()) or "skipped"
    print(f"wrote {result.onnx_path} (torch module, {result.node_counts.get('Conv', 0)} Conv, "
          f"{result.node_counts.get('Gather', 0)} Gather) and {result.plan_path}; parity with ONNX Runtime {parity}")
    return 0
