"""`dsp-deploy finetune P.pt --data D --out F.pt`: fine-tune with the pruned structure enforced."""
from __future__ import annotations

import argparse
import json

from dsp_deploy.training.cli_args import add_loop_options, add_run_options, data_overrides, format_table, loop_overrides


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a pruned checkpoint (pruned weights stay exactly zero)",
        description="Fine-tune a pruned checkpoint with SGD and a cosine learning rate; the structure's masks "
                    "are re-applied after every step. F.pt is written when the run ends; meanwhile F.resume.pt "
                    "holds the resumable state and F.metrics.jsonl the metrics.")
    parser.add_argument("checkpoint", help="pruned checkpoint (from `dsp-deploy prune`)")
    parser.add_argument("--out", required=True, metavar="F.pt", help="fine-tuned checkpoint to write")
    add_run_options(parser, resume_help="continue the interrupted fine-tune of --out (from F.resume.pt)")
    add_loop_options(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsp_deploy.training.finetune import FinetuneOptions, run_finetune

    summary = run_finetune(FinetuneOptions(
        checkpoint=args.checkpoint, data=args.data, out=args.out, recipe=args.recipe,
        overrides=loop_overrides(args), data_overrides=data_overrides(args), seed=args.seed, device=args.device,
        resume=args.resume, checkpoint_every=args.checkpoint_every, progress=not args.no_progress))
    if summary.get("rank", 0) != 0:
        return 0
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_table([
            ("checkpoint", summary["checkpoint"]),
            ("metrics", summary["metrics"]),
            ("val accuracy", f"{summary['val_accuracy_before']:.2f}% -> {summary['val_accuracy']:.2f}%"),
            ("processes", str(summary["world_size"])),
        ]))
    return 0
