"""`dsp-deploy finetune P.pt --data D --out F.pt`: fine-tune with the pruned structure enforced."""
from __future__ import annotations

import argparse

from dsp_deploy.training.cli_args import (
    add_loop_options,
    add_run_options,
    data_overrides,
    loop_overrides,
    report_summary,
)


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
    return report_summary(summary, args.json, lambda s: [
        ("checkpoint", s["checkpoint"]),
        ("metrics", s["metrics"]),
        ("val accuracy", f"{s['val_accuracy_before']:.2f}% -> {s['val_accuracy']:.2f}%"),
        ("processes", str(s["world_size"])),
    ], kind="finetune-summary")
