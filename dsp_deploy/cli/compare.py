"""`dsp-deploy compare`: DSP vs channel-pruned baselines at matched FLOPs, exported, benchmarked and
reported side by side. Thin wrapper over ``dsp_deploy.compare``."""
from __future__ import annotations

import argparse
import logging
from typing import Any

from dsp_deploy.compare import CompareConfig, headline_rows, run_compare
from dsp_deploy.compare.config import DEFAULT_BATCHES, QUICK_BATCHES, parse_baselines, parse_floats, parse_ints

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Register the `compare` subcommand."""
    parser = subparsers.add_parser(
        "compare",
        help="compare DSP with channel-pruned baselines at matched FLOPs (latency per backend and batch)",
        description="Build dense, DSP, L1-channel-pruned and Torch-Pruning variants at the DSP model's "
        "FLOPs, export each, benchmark them interleaved and write a report folder (results.json, "
        "results.csv, report.md, PNG plots).",
    )
    parser.add_argument("--model", default=None, help="model name, e.g. resnet56 (implied by --checkpoint)")
    parser.add_argument("--checkpoint", default=None, metavar="CKPT",
                        help="DSP checkpoint (ours or the authors' TorchScript), or a dense checkpoint "
                        "to prune with --groups/--flops-reduction")
    parser.add_argument("--groups", type=int, default=None, metavar="G", help="groups for one-shot DSP pruning")
    parser.add_argument("--flops-reduction", default=None, metavar="R",
                        help="FLOPs reduction for one-shot DSP pruning, e.g. 0.6 (comma-separated for several)")
    parser.add_argument("--flops-metric", choices=("dsp", "total"), default=None,
                        help="FLOPs convention of --flops-reduction (default: dsp on CIFAR, total on ImageNet)")
    parser.add_argument("--dense-weights", default=None, metavar="PTH",
                        help="state_dict for the dense model in one-shot mode (default: random init)")
    parser.add_argument("--baselines", default="l1,tp",
                        help="comma-separated among l1 (L1 channel pruning incl. residual streams), l1-inner "
                        "(block-inner channels only, as Li et al. prune ResNets), tp (Torch-Pruning), "
                        "pfs (Pruning from Scratch), "
                        "scp (Soft Channel Pruning; pfs=CKPT / scp=CKPT use a `train --method` checkpoint, else the "
                        "method's structure search runs on synthetic data), dppnet (DPPNet with random patterns at the "
                        "nearest FLOPs; resnet20/56/18/34), or none "
                        "(default: %(default)s)")
    parser.add_argument("--backend", default="ort-cpu",
                        help="comma-separated: ort-cpu, ort-cuda, torch, torch-cuda, trt (default: %(default)s)")
    parser.add_argument("--batch", default=None, help="comma-separated batch sizes (default: 1,8,32; quick: 1,8)")
    parser.add_argument("--threads", default=None, help="comma-separated CPU thread counts (default: usable cores)")
    parser.add_argument("--runs", type=int, default=None, help="timed rounds per batch (default: 50; quick: 10)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed rounds first (default: %(default)s)")
    parser.add_argument("--lowering", default="auto",
                        help="our exporter's lowering for pruned variants: auto, grouped, branches, union, dense")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights and inputs")
    parser.add_argument("--no-models", action="store_true", help="do not keep the exported models in OUT/models")
    parser.add_argument("--quick", action="store_true", help="few runs, batches 1 and 8: a fast smoke comparison")
    parser.add_argument("--match", choices=("flops", "latency"), default="flops",
                        help="prune baselines to the DSP model's FLOPs, or to its measured latency within 5%% "
                        "(report shows their FLOPs at that latency) (default: %(default)s)")
    parser.add_argument("--match-batch", type=int, default=None, metavar="B",
                        help="batch the latency match is measured at (default: the largest --batch)")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (replaced atomically)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the comparison described by ``args``; returns the exit code."""
    config = CompareConfig(
        model=args.model, checkpoint=args.checkpoint, groups=args.groups,
        flops_reductions=parse_floats(args.flops_reduction, "--flops-reduction"), flops_metric=args.flops_metric,
        dense_weights=args.dense_weights, baselines=parse_baselines(args.baselines),
        backends=tuple(args.backend.split(",")),
        batches=parse_ints(args.batch, "--batch") or (QUICK_BATCHES if args.quick else DEFAULT_BATCHES),
        threads=parse_ints(args.threads, "--threads"), runs=args.runs, warmup=args.warmup,
        lowering=args.lowering, seed=args.seed,
        keep_models=not args.no_models, quick=args.quick, match=args.match, match_batch=args.match_batch,
    )
    result = run_compare(config, args.out, progress=None if not args.quiet else False)
    print(f"wrote {args.out}: results.json, results.csv, report.md, latency_vs_flops.png, speedup_vs_batch.png")
    for line in headline_rows(result):
        print(line)
    return 0
