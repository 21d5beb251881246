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


TARGET_FIELDS = {"backend": "backend", "target_threads": "threads", "target_batch": "batch",
                 "channel_multiple": "channel_multiple", "latency_table": "table"}
"""Target flag (parser dest) -> the field of LatencyOptions / HardwareTarget it sets. The parser's defaults
are None, so a given flag is seen; a flag not given leaves the field at the dataclass's default."""
MEASURE_FLAGS = {"no_measure": "--no-measure", "latency_stat": "--latency-stat"}
TARGET_FLAGS = {"backend": "--backend", "target_threads": "--target-threads", "target_batch": "--target-batch",
                "latency_table": "--latency-table", **MEASURE_FLAGS}


def add_latency_options(parser: argparse.ArgumentParser) -> None:
    """--latency-target / --speedup and the target they are measured on (see `dsp_deploy.hardware`)."""
    group = parser.add_argument_group("latency target (instead of --flops-reduction; measured on this machine)")
    group.add_argument("--latency-target", type=float, metavar="MS",
                       help="prune to this predicted latency in ms on the target")
    group.add_argument("--speedup", type=float, metavar="X",
                       help="prune to X times faster than the dense model on the target (predicted)")
    group.add_argument("--backend",
                       help="target backend: ort-cpu (default; measured); ort-cuda, trt, torch-cuda are named but not "
                            "measurable yet")
    group.add_argument("--target-threads", type=int, help="target intra-op threads (default 1)")
    group.add_argument("--target-batch", type=int, help="target batch size (default 1)")
    group.add_argument("--latency-table", metavar="FILE",
                       help="latency table to use/write (default: ~/.cache/dsp-deploy/latency/, keyed by the machine)")
    group.add_argument("--no-measure", action="store_true", default=None,
                       help="do not export and time the result beside dense (record the prediction only)")
    from dsp_deploy.runtime.timing import STATS

    group.add_argument("--latency-stat", choices=STATS,
                       help="what a measured try is judged by (default: median; min on a shared, noisy host)")


def _given(args: argparse.Namespace, flags: Mapping[str, str]) -> list[str]:
    return [flag for dest, flag in flags.items() if getattr(args, dest, None) is not None]


def check_target_flags(args: argparse.Namespace, *, latency_goal: bool) -> None:
    """Refuse target flags that would be ignored (UsageError naming them): without a latency goal
    or --hardware-aware no target is used, and --hardware-aware measures nothing but its table."""
    from dsp_deploy.errors import UsageError

    hardware = getattr(args, "hardware_aware", False)
    if not latency_goal and not hardware:
        given = _given(args, TARGET_FLAGS)
        if given:
            raise UsageError(f"{', '.join(given)} describe{'s' if len(given) == 1 else ''} a latency target: "
                             "give --latency-target MS or --speedup X" + (", or --hardware-aware"
                                                                          if hasattr(args, "hardware_aware") else ""))
    elif hardware and not latency_goal:
        given = _given(args, MEASURE_FLAGS)
        if given:
            raise UsageError(f"{', '.join(given)}: --hardware-aware measures nothing beyond its latency table "
                             "(it shapes a FLOPs target); drop the flag")


def _target_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The given target flags as LatencyOptions / HardwareTarget keyword arguments."""
    given = {dest: getattr(args, dest, None) for dest in TARGET_FIELDS}
    return {TARGET_FIELDS[dest]: value for dest, value in given.items() if value is not None}


def latency_options(args: argparse.Namespace, flops_reduction: float | None) -> Any:
    """LatencyOptions from the parsed flags, or None for a FLOPs target (UsageError on two targets,
    or on target flags that would be ignored)."""
    from dsp_deploy.hardware.budget import check_goal
    from dsp_deploy.training.latency_prune import LatencyOptions

    goal = check_goal(flops_reduction, args.latency_target, args.speedup)
    check_target_flags(args, latency_goal=goal is not None)
    if goal is None:
        return None
    measuring = {"measure": not args.no_measure, **({"stat": args.latency_stat} if args.latency_stat else {})}
    return LatencyOptions(goal, **_target_fields(args), **measuring)


def hardware_target(args: argparse.Namespace) -> Any:
    """HardwareTarget of ``--hardware-aware`` (the target flags of `add_latency_options`), else None."""
    if not getattr(args, "hardware_aware", False):
        return None
    from dsp_deploy.training.hardware_prune import HardwareTarget

    return HardwareTarget(**_target_fields(args))
