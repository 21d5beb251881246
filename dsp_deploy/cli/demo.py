"""`dsp-deploy demo`: the whole DSP pipeline on the built-in dataset, with a summary at the end."""
from __future__ import annotations

import argparse

from dsp_deploy.app.demo import DemoOptions, format_demo_summary, resolve_demo_data, run_demo
from dsp_deploy.utils.jsonfile import summary_document


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = DemoOptions()
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline on Fashion-MNIST (or the built-in synthetic set; ~6 min on 2 idle cores)",
        description="Dense ResNet-20 on Fashion-MNIST (the synthetic set when it is not installed), DSP group "
                    "learning, group channel pruning to 60%% fewer FLOPs, fine-tuning and evaluation; prints which "
                    "data it used, dense vs pruned validation and test accuracy, FLOPs and the files written to --out.")
    parser.add_argument("--out", default=d.out, metavar="DIR", help=f"output folder (default: {d.out})")
    parser.add_argument("--data", default="auto",
                        help="dataset (default: auto = Fashion-MNIST from the Debian package dataset-fashion-mnist, "
                             "installed when run as root with apt-get, on a 3000-image training subset; else the "
                             "built-in synthetic set)")
    parser.add_argument("--groups", type=int, default=d.groups, help=f"groups per conv (default: {d.groups})")
    parser.add_argument("--flops-reduction", type=float, default=d.flops_reduction, metavar="R",
                        help=f"FLOPs reduction target as a fraction (default: {d.flops_reduction})")
    parser.add_argument("--epochs", type=int, default=d.dense_epochs, help=f"dense epochs (default: {d.dense_epochs})")
    parser.add_argument("--group-epochs", type=int, default=d.group_epochs,
                        help=f"group-learning epochs (default: {d.group_epochs})")
    parser.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                        help=f"fine-tuning epochs (default: {d.finetune_epochs})")
    parser.add_argument("--flops-only", action="store_true",
                        help="prune by FLOPs alone, as the paper does (default: shape the structure for this machine, "
                             "as `prune --hardware-aware --target-batch 32`: on a CPU most layers then fall back to "
                             "one group, which runs faster at the same FLOPs)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed (default: {d.seed})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    data, note = resolve_demo_data(args.data)
    print(f"demo {note}", file=sys.stderr)
    summary = run_demo(DemoOptions(out=args.out, data=data, data_note=note, groups=args.groups,
                                   flops_reduction=args.flops_reduction, dense_epochs=args.epochs,
                                   group_epochs=args.group_epochs, finetune_epochs=args.finetune_epochs,
                                   seed=args.seed, progress=not args.no_progress,
                                   hardware_aware=not args.flops_only))
    print(summary_document("demo-summary", summary) if args.json else format_demo_summary(summary))
    return 0
