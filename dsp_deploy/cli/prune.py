"""`dsp-deploy prune CKPT --flops-reduction R --out P.pt`: group channel pruning to a FLOPs target."""
from __future__ import annotations

import argparse

from dsp_deploy.cli import as_flag
from dsp_deploy.training.cli_args import add_latency_options, hardware_target, latency_options, report_summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prune", help="prune a group-learned (or, with --groups, a dense) checkpoint to a FLOPs target",
        description="Group channel pruning (DSP): hard group assignment from the learned logits (or one-shot "
                    "clustering with --groups G), per-group channel importance from the weights, one global "
                    "threshold found by bisection to hit the FLOPs target, filter pruning of each block's last "
                    "conv, dead-channel removal. Writes a checkpoint with the structure IR.")
    parser.add_argument("checkpoint", help="train run folder, its checkpoint.pt, any dense checkpoint, or (with "
                                           "--model) a torchvision-style state_dict file such as resnet50.pth")
    parser.add_argument("--model", help="architecture of a plain state_dict file (e.g. resnet50 for torchvision's)")
    parser.add_argument("--flops-reduction", type=float, metavar="R",
                        help="target FLOPs reduction as a fraction, 0 < R < 1 (0.6 = 60%% fewer FLOPs)")
    parser.add_argument("--flops-metric", choices=("dsp", "total"),
                        help="FLOPs convention: dsp = residual-block convs (CIFAR papers), total = whole model "
                             "(default: the model family's convention)")
    parser.add_argument("--groups", type=int, metavar="G",
                        help="group the filters one-shot by clustering (needed for dense checkpoints)")
    parser.add_argument("--channel-multiple", type=int, metavar="N",
                        help="hardware-aligned pruning (default off): every group's kept input-channel and "
                             "filter counts become multiples of N (at most all), e.g. 16 for ONNX Runtime's "
                             "AVX-512 kernels; the groups and the FLOPs target are unchanged. With --latency-target/"
                             "--speedup it defaults to the target's alignment (8 on AVX2, 16 on AVX-512/AMX)")
    add_latency_options(parser)
    parser.add_argument("--hardware-aware", action="store_true",
                        help="with --flops-reduction: shape the structure for the target (--backend, "
                             "--target-threads, --target-batch; its latency table): group sizes in its channel "
                             "multiple (finer where the target cannot be reached), one group where groups cost "
                             "more than they save (net of the MACs one group keeps, pruned elsewhere), and on "
                             "ort-cpu a one-group conv's stream reads and block "
                             "outputs kept whole (pruned they would run as zeros), so the FLOPs cut are the ones "
                             "the export saves")
    parser.add_argument("--out", required=True, metavar="P.pt", help="pruned checkpoint to write")
    parser.add_argument("--recipe", metavar="NAME|FILE",
                        help="shipped recipe name or JSON file whose 'prune' section gives defaults")
    parser.add_argument("--criterion", default="l2sq", metavar="NAME",
                        help="weight-importance criterion: l2sq (default: squared L2 energy, the paper's) or l1 "
                             "(L1 norm); see dsp_deploy.pruning.criteria")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one-shot clustering")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


SPELLED = {"target": "--flops-reduction R (e.g. 0.6 for 60% fewer FLOPs), --latency-target MS or --speedup X",
           "hardware": "--hardware-aware"}
"""How the command line spells the pruning options that are not one flag (the others: --flag-name)."""


def run(args: argparse.Namespace) -> int:
    from dsp_deploy.errors import OptionError
    from dsp_deploy.training.prune import PruneOptions, prune_checkpoint

    latency = latency_options(args, args.flops_reduction)
    hardware = hardware_target(args)
    try:
        summary = prune_checkpoint(PruneOptions(
            checkpoint=args.checkpoint, out=args.out, flops_reduction=args.flops_reduction,
            flops_metric=args.flops_metric, groups=args.groups, seed=args.seed, progress=not args.no_progress,
            channel_multiple=args.channel_multiple, latency=latency, model=args.model, criterion=args.criterion,
            recipe=args.recipe, hardware=hardware))
    except OptionError as exc:
        raise as_flag(exc, SPELLED) from None
    return report_summary(summary, args.json, _rows, kind="prune-summary")


def _rows(s: dict) -> list[tuple[str, str]]:
    rows = [("checkpoint", s["checkpoint"]), ("groups", f"{s['groups']} ({s['grouping']})")]
    if s.get("target_pct") is not None:
        rows.append((f"FLOPs reduction ({s['flops_metric']})",
                     f"{s['reduction_pct']:.2f}% (target {s['target_pct']:.1f}%)"))
    rows.append(("FLOPs reduction (whole model)", f"{s['flops_reduction_pct']:.2f}%"))
    lat = s.get("latency")
    if lat:
        fp, native = lat["target"]["fingerprint"], lat["target"]["channel_multiple"]
        used = lat.get("channel_multiple", native)
        rows.append(("target", f"{lat['target']['backend']}, {lat['target']['threads']} thread(s), batch "
                               f"{lat['target']['batch']}, {fp['cpu']} ({fp['isa']}), channel multiple {used}"
                               + (f" (the target's {native} could not reach the goal)" if used != native else "")))
        if lat.get("shape_rules"):
            rows.append(("shape rules", lat["shape_rules"]))
        rows.append(("latency (predicted)",
                     f"{lat['predicted_ms']:.3f} ms vs dense {lat['predicted_dense_ms']:.3f} ms "
                     f"({lat['predicted_speedup']:.2f}x; goal {lat['goal']})"))
        if "measured_ms" in lat:
            rows.append(("latency (measured)",
                         f"{lat['measured_ms']:.3f} ms vs dense {lat['measured_dense_ms']:.3f} ms "
                         f"(medians: {lat['measured_speedup']:.2f}x, minimums: {lat['measured_speedup_min']:.2f}x; "
                         f"judged by the {lat.get('judged_by', 'median')})"))
    hw = s.get("hardware")
    if hw:
        fp, native = hw["target"]["fingerprint"], hw["target"]["channel_multiple"]
        used = hw["channel_multiple"]
        rows.append(("shaped for", f"{hw['target']['backend']}, {hw['target']['threads']} thread(s), batch "
                                   f"{hw['target']['batch']}, {fp['cpu']} ({fp['isa']}), channel multiple {used}"
                                   + (f" (the target's {native} could not reach the FLOPs target)"
                                      if used != native else "")))
        rows.append(("groups kept", f"{hw['grouped_layers']} layer(s) grouped, {hw['one_group_layers']} one group "
                                    "(where groups cost more than they save)"))
        rows.append(("latency (predicted)", f"{hw['predicted_ms']:.3f} ms vs dense {hw['predicted_dense_ms']:.3f} ms "
                                            f"({hw['predicted_speedup']:.2f}x)"))
    rows += [("params reduction", f"{s['params_reduction_pct']:.2f}%"), ("time", f"{s['time_s']:.1f} s")]
    return rows
