"""`dsp-deploy train`: differentiable group learning (DSP), or plain dense training with --dense.

Writes the run folder OUT: OUT/checkpoint.pt (every epoch; complete when the run ends; what
`prune` reads) and OUT/metrics.jsonl.
"""
from __future__ import annotations

import argparse

from dsp_deploy.training.cli_args import (
    add_latency_options,
    add_loop_options,
    add_run_options,
    check_target_flags,
    data_overrides,
    latency_options,
    loop_overrides,
    report_summary,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="learn filter groups (DSP group learning) or train a dense model",
        description="With a dppnet-* model: DPPNet's pattern learning (masks, thresholds, alpha sparsity term). "
                    "Otherwise: train a ResNet with DSP's differentiable group learning: Gumbel-softmax group "
                    "assignments, "
                    "the group-lasso regularizer with its look-ahead update of the group logits. The run folder "
                    "--out gets checkpoint.pt (every epoch, resumable) and metrics.jsonl. Under torchrun "
                    "--nproc_per_node N it trains with DistributedDataParallel.")
    parser.add_argument("--model", help="model name, e.g. resnet20, resnet56, resnet18, resnet50")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder to create")
    parser.add_argument("--dense", action="store_true", help="plain dense training (no group learning)")
    parser.add_argument("--init", metavar="CKPT", help="start from this dense checkpoint's weights")
    add_run_options(parser, resume_help="continue the interrupted run in --out")
    add_loop_options(parser)
    dsp = parser.add_argument_group("group learning (default: from --recipe, else the paper's settings)")
    dsp.add_argument("--groups", type=int, help="groups per conv, G (default 4)")
    dsp.add_argument("--tau", type=float, help="Gumbel-softmax temperature (paper: 0.125, 0.25, 0.5 or 1)")
    dsp.add_argument("--lambda", dest="lam", type=float,
                     help="regularization strength, ramped up linearly (paper: 5e-4..3e-3 CIFAR, 1e-4..5e-4 ImageNet)")
    dsp.add_argument("--group-lr", type=float, help="Adam learning rate of the group logits (default 1e-3)")
    dsp.add_argument("--no-lookahead", action="store_true",
                     help="drop the look-ahead (second-order) term of the logit update (faster, less faithful)")
    method = parser.add_argument_group("pruning method (with --flops-reduction: search, prune and retrain in one run)")
    method.add_argument("--method", default="dsp",
                        help="dsp (group learning; alone unless --flops-reduction), l1 (L1-norm channel pruning), "
                             "pfs (Pruning from Scratch) or scp (Soft Channel Pruning)")
    method.add_argument("--flops-reduction", type=float, metavar="R",
                        help="FLOPs to remove, e.g. 0.5: runs every stage of --method into --out "
                             "(search/, pruned.pt, final.pt)")
    method.add_argument("--flops-metric", choices=("dsp", "total"),
                        help="FLOPs convention of the target (default: the model's, dsp for CIFAR ResNets)")
    add_latency_options(parser)
    dpp = parser.add_argument_group("DPPNet pattern learning (models dppnet-*; default: from --recipe)")
    dpp.add_argument("--alpha", type=float,
                     help="threshold sparsity weight (authors' code default 1e-4; 8e-6 in their ImageNet "
                          "ResNet-34 run)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsp_deploy.errors import UsageError
    from dsp_deploy.training.learn import TrainOptions, run_train
    from dsp_deploy.training.methods import check_method

    check_method(args.method)
    if args.method != "dsp" or args.flops_reduction is not None or args.latency_target or args.speedup:
        if args.dense:
            raise UsageError("--dense trains without pruning; it does not combine with --method/--flops-reduction")
        return _run_method(args)
    check_target_flags(args, latency_goal=False)

    overrides = loop_overrides(args)
    overrides["alpha"] = args.alpha
    if not args.dense:
        overrides.update(groups=args.groups, tau=args.tau, group_lr=args.group_lr,
                         lookahead=False if args.no_lookahead else None, **{"lambda": args.lam})
    summary = run_train(TrainOptions(
        data=args.data, out=args.out, model=args.model, dense=args.dense, init=args.init, recipe=args.recipe,
        overrides=overrides, data_overrides=data_overrides(args), seed=args.seed, device=args.device,
        resume=args.resume, checkpoint_every=args.checkpoint_every, progress=not args.no_progress))
    return report_summary(summary, args.json, lambda s: [
        ("checkpoint", s["checkpoint"]),
        ("metrics", s["metrics"]),
        ("val accuracy", f"{s['val_accuracy']:.2f}%" if isinstance(s.get("val_accuracy"), float) else "n/a"),
        ("groups", str(s.get("groups", "dense"))) if "patterns" not in s else ("patterns", s["patterns"]),
    ], kind="train-summary")


def _run_method(args: argparse.Namespace) -> int:
    from dsp_deploy.errors import UsageError
    from dsp_deploy.training.methods import MethodOptions, run_method
    from dsp_deploy.training.recipe import load_recipe

    reduction = args.flops_reduction
    latency = latency_options(args, None if args.method in ("pfs", "scp") else reduction)
    if reduction is None and (latency is None or args.method in ("pfs", "scp")):
        reduction = load_recipe(args.recipe)["prune"]["flops_reduction"]
    if reduction is None and latency is None:
        raise UsageError(f"--method {args.method} needs --flops-reduction R, --latency-target MS or --speedup X "
                         "(or a --recipe with prune.flops_reduction)")
    if reduction is None and args.method in ("pfs", "scp"):
        raise UsageError(f"--method {args.method} searches to a FLOPs ratio: give --flops-reduction R too")
    dsp = {"train": {"tau": args.tau, "group_lr": args.group_lr, "lambda": args.lam,
                     "lookahead": False if args.no_lookahead else None}}
    summary = run_method(MethodOptions(
        method=args.method, data=args.data, out=args.out, flops_reduction=reduction, model=args.model, latency=latency,
        flops_metric=args.flops_metric, groups=args.groups, recipe=args.recipe, overrides=loop_overrides(args),
        stage_overrides=dsp, data_overrides=data_overrides(args), seed=args.seed, device=args.device,
        resume=args.resume, checkpoint_every=args.checkpoint_every, progress=not args.no_progress))
    return report_summary(summary, args.json, lambda s: [
        ("checkpoint", s["checkpoint"]),
        ("method", f"{s['method']} ({s['groups']} group{'s' if s['groups'] > 1 else ''} per conv)"),
        ("FLOPs reduction", f"{s['reduction_pct']:.2f}% ({s['flops_metric']} convention; target "
                            + (f"{s['target_pct']:.1f}%)" if s.get("target_pct") is not None
                               else f"{s['latency']['goal']})") + f", whole model {s['flops_reduction_pct']:.2f}%"),
        ("val accuracy", f"{s['val_accuracy']:.2f}%" if isinstance(s.get("val_accuracy"), float) else "n/a"),
        ("test accuracy", f"{s['test_accuracy']:.2f}%" if isinstance(s.get("test_accuracy"), float) else "n/a"),
        ("time", f"{s['time_s']:.0f} s"),
    ], kind="train-summary")
