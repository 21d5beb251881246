"""Command-line options shared by `train`, `finetune` and `demo` (torch-free: the CLI imports it)."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from dsp_deploy.utils.jsonfile import summary_document


def add_loop_options(parser: argparse.ArgumentParser) -> None:
    """Optimisation options; unset ones fall back to the recipe, then to the paper's defaults."""
    group = parser.add_argument_group("optimisation (default: from --recipe, else the paper's CIFAR-10 settings)")
    group.add_argument("--epochs", type=int, help="epochs to train")
    group.add_argument("--iterations", type=int, help="total optimizer steps (overrides --epochs)")
    group.add_argument("--lr", type=float, help="initial SGD learning rate (cosine-annealed to 0)")
    group.add_argument("--momentum", type=float, help="SGD momentum")
    group.add_argument("--weight-decay", type=float, help="SGD weight decay")
    group.add_argument("--warmup-epochs", type=float, help="linear learning-rate warm-up before the cosine (default 0)")
    group.add_argument("--batch-size", type=int, help="global batch size (split over torchrun processes)")
    group.add_argument("--workers", type=int, help="data-loading worker processes per rank")


def add_run_options(parser: argparse.ArgumentParser, *, resume_help: str) -> None:
    parser.add_argument("--data", required=True,
                        help="dataset: 'synthetic', 'cifar10:PATH' or an ImageFolder/CIFAR-10 folder")
    parser.add_argument("--recipe", metavar="NAME|FILE",
                        help="a shipped recipe by name (e.g. cifar10_resnet20, see training/README.md) or a JSON file")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, data order and Gumbel noise")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to train (auto: CUDA if available)")
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                        help="also save the resumable state every N steps (default: every epoch only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def loop_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": args.epochs, "iterations": args.iterations, "lr": args.lr, "momentum": args.momentum,
            "weight_decay": args.weight_decay, "warmup_epochs": args.warmup_epochs}


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"batch_size": args.batch_size, "workers": args.workers}


def format_table(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def report_summary(summary: Mapping[str, Any], as_json: bool,
                   rows: Callable[[Mapping[str, Any]], list[tuple[str, str]]], *, kind: str) -> int:
    """Print a stage's summary on rank 0 only (torchrun starts one process per device): as JSON
    (format ``dsp-deploy/<kind>``) with ``--json``, else as the two-column table ``rows`` makes of
    it. Returns exit code 0."""
    if summary.get("rank", 0) != 0:
        return 0
    print(summary_document(kind, summary) if as_json else format_table(rows(summary)))
    return 0


def add_latency_options(parser: argparse.ArgumentParser) -> None:
    """--latency-target / --speedup and the target they are measured on (see `dsp_deploy.hardware`)."""
    group = parser.add_argument_group("latency target (instead of --flops-reduction; measured on this machine)")
    group.add_argument("--latency-target", type=float, metavar="MS",
                       help="prune to this predicted latency in ms on the target")
    group.add_argument("--speedup", type=float, metavar="X",
                       help="prune to X times faster than the dense model on the target (predicted)")
    group.add_argument("--backend", default="ort-cpu",
                       help="target backend: ort-cpu (measured); ort-cuda, trt, torch-cuda are named but not "
                            "measurable yet")
    group.add_argument("--target-threads", type=int, default=1, help="target intra-op threads (default 1)")
    group.add_argument("--target-batch", type=int, default=1, help="target batch size (default 1)")
    group.add_argument("--latency-table", metavar="FILE",
                       help="latency table to use/write (default: ~/.cache/dsp-deploy/latency/, keyed by the machine)")
    group.add_argument("--no-measure", action="store_true",
                       help="do not export and time the result beside dense (record the prediction only)")
    from dsp_deploy.runtime.timing import STATS

    group.add_argument("--latency-stat", choices=STATS, default="median",
                       help="what a measured try is judged by (default: median; min on a shared, noisy host)")


def latency_options(args: argparse.Namespace, flops_reduction: float | None) -> Any:
    """LatencyOptions from the parsed flags, or None for a FLOPs target (UsageError on two targets)."""
    from dsp_deploy.hardware.budget import check_goal
    from dsp_deploy.training.latency_prune import LatencyOptions

    goal = check_goal(flops_reduction, args.latency_target, args.speedup)
    if goal is None:
        return None
    return LatencyOptions(goal, args.backend, args.target_threads, args.target_batch,
                          getattr(args, "channel_multiple", None), args.latency_table, not args.no_measure,
                          stat=args.latency_stat)


def hardware_target(args: argparse.Namespace) -> Any:
    """HardwareTarget of ``--hardware-aware`` (the target flags of `add_latency_options`), else None."""
    if not getattr(args, "hardware_aware", False):
        return None
    from dsp_deploy.training.hardware_prune import HardwareTarget

    return HardwareTarget(args.backend, args.target_threads, args.target_batch, getattr(args, "channel_multiple", None),
                          args.latency_table)
