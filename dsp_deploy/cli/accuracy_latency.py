"""`dsp-deploy accuracy-latency`: accuracy at equal measured latency, DSP against the channel-pruning
methods (also ``python bench/accuracy_latency.py``). Thin wrapper over ``dsp_deploy.frontier``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_OUT = "bench/results/accuracy_latency"
"""The full run's report folder; a quick run writes to its ``quick/`` subfolder (never over the full report)."""


def add_parser(subparsers: Any) -> None:
    """Register the `accuracy-latency` subcommand."""
    parser = subparsers.add_parser(
        "accuracy-latency",
        help="accuracy of DSP and channel-pruned models at equal measured latency (and equal FLOPs)",
        description="Train dense ResNets on Fashion-MNIST once per seed, prune them with every method to "
        "three latency budgets (measured, ONNX Runtime CPU 1 thread) and the matching FLOPs targets, train "
        "each under the same budget, and write results.json/.csv, report.md and plots. Every model is "
        "cached: a rerun resumes.")
    parser.add_argument("--budget", choices=("quick", "full"), default="quick",
                        help="quick: ResNet-20, tiny subset, 1 seed (minutes); full: ResNet-20/56, 2 seeds (hours)")
    parser.add_argument("--data", default=None, help="dataset spec (default per budget, e.g. fashion-mnist@600)")
    parser.add_argument("--models", default=None, help="comma-separated models (default per budget)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default per budget)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated among dsp-g2, dsp-g4, dsp-latency, dsp-shaped, l1, pfs, scp, dppnet "
                             "(default: all)")
    parser.add_argument("--cache", default=".cache/accuracy_latency", metavar="DIR",
                        help="trained models and measurements (default: %(default)s)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"report folder (default: {DEFAULT_OUT} for --budget full, {DEFAULT_OUT}/quick for quick)")
    parser.add_argument("--report-only", default=None, metavar="RESULTS_JSON",
                        help="only (re)write the report from a results.json")
    parser.add_argument("--replace-rows", default=None, metavar="RESULTS_JSON",
                        help="with --report-only: replace the rows of the methods this later run ran (e.g. "
                        "--methods dsp-latency) by its rows; refused unless the machine, training settings and "
                        "dense models match")
    parser.add_argument("--allow-mixed-machines", action="store_true",
                        help="report a results file whose rows come from different machines")
    parser.add_argument("--cached-only", action="store_true",
                        help="train nothing: report the models already in the cache (the others listed as not run)")
    parser.add_argument("--no-imagenet", action="store_true", help="skip the ResNet-50 ImageNet estimate")
    parser.set_defaults(handler=run)


def _list(spec: str | None, kind: type) -> tuple | None:
    if spec is None:
        return None
    from dsp_deploy.compare.config import _parse_list

    return _parse_list(spec, "list item", kind, "valid") if kind is not str else \
        tuple(s.strip() for s in spec.split(",") if s.strip())


def resolve_data(spec: str) -> tuple[str, str]:
    """(spec, note): Fashion-MNIST when its files are there, else the synthetic set, said plainly."""
    from dsp_deploy.data import dataset_info
    from dsp_deploy.errors import DataError

    try:
        info = dataset_info(spec)
    except DataError as exc:
        if not spec.startswith("fashion-mnist"):
            raise
        count = spec.partition("@")[2] or "2000"
        return f"synthetic:{count}", f"SYNTHETIC images (Fashion-MNIST not found: {exc}); accuracies are not real-world"
    return spec, f"{spec} ({info.name}: {'x'.join(map(str, info.input_shape))} images, {info.num_classes} classes)"


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the comparison and write the report; returns the exit code."""
    from dsp_deploy.frontier.report import read_results, write_report

    def out_for(budget: str) -> Path:
        return Path(args.out or (DEFAULT_OUT if budget == "full" else f"{DEFAULT_OUT}/quick"))

    out = out_for(args.budget)
    if args.replace_rows and not args.report_only:
        from dsp_deploy.errors import UsageError

        raise UsageError("--replace-rows needs --report-only RESULTS_JSON (the results whose rows it replaces)")
    if args.report_only:
        doc = read_results(args.report_only)
        if args.replace_rows:
            from dsp_deploy.frontier.merge import replace_rows

            doc = replace_rows(doc, read_results(args.replace_rows), source=args.replace_rows)
        out = out_for(str(doc.get("budget", args.budget)))
        from dsp_deploy.frontier.report import check_machines

        check_machines(doc, args.allow_mixed_machines)  # before anything is written
        extra: list[str] = []
        if doc.get("imagenet"):
            from dsp_deploy.frontier.imagenet import imagenet_markdown

            extra = imagenet_markdown(doc["imagenet"], out)
        files = write_report(doc, out, allow_mixed=args.allow_mixed_machines, extra_md=extra)
        print(f"wrote {out}: {', '.join(files)}")
        return 0
    import time

    from dsp_deploy.frontier.run import run_all
    from dsp_deploy.frontier.settings import settings_for

    started = time.perf_counter()

    settings = settings_for(args.budget, data=args.data, models=_list(args.models, str),
                            seeds=_list(args.seeds, int), methods=_list(args.methods, str))
    data, note = resolve_data(settings.data)
    settings = settings_for(args.budget, data=data, models=settings.models, seeds=settings.seeds,
                            methods=settings.methods)
    command = " ".join(["python bench/accuracy_latency.py" if "bench" in sys.argv[0] else "dsp-deploy accuracy-latency",
                        *(a for a in sys.argv[1:] if a != "accuracy-latency")])
    doc = run_all(settings, Path(args.cache), progress=not args.quiet and sys.stderr.isatty(), command=command,
                  data_note=note, cached_only=args.cached_only)
    if not args.no_imagenet:
        from dsp_deploy.frontier.imagenet import imagenet_estimate

        doc["imagenet"] = imagenet_estimate(Path(args.cache), runs=settings.runs // 2 or 3, quick=settings.quick)
    from dsp_deploy.frontier.imagenet import imagenet_markdown

    doc["imagenet_md"] = imagenet_markdown(doc.get("imagenet"), out) if doc.get("imagenet") else []
    doc["wall_seconds"] = round(time.perf_counter() - started, 1)  # the whole command, ImageNet estimate included
    files = write_report(doc, out, allow_mixed=args.allow_mixed_machines, extra_md=doc["imagenet_md"])
    print(f"wrote {out}: {', '.join(files)} ({doc['wall_seconds']:.0f} s)")
    from dsp_deploy.frontier.report import winner_line, winners

    for (model, budget), found in winners(doc).items():
        print(f"{model} at {budget:g}x dense speed: {winner_line(found)}")
    return 0
