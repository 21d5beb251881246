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
