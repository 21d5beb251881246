"""`dsp-deploy info PATH [--json]`: model, groups, FLOPs and params per layer."""
from __future__ import annotations

import argparse

from dsp_deploy.checkpoint_info import add_dppnet_section, format_summary, load_any_structure, summarize, summary_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="show groups, FLOPs and params of a checkpoint or structure.json",
        description="Print model, groups, FLOPs and params (dense, remaining, reduction %) per layer.")
    parser.add_argument("path", help="dsp-deploy checkpoint (.pt) or structure JSON")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    structure, metadata = load_any_structure(args.path)
    summary = summarize(structure, metadata)
    add_dppnet_section(summary, args.path)
    print(summary_json(summary) if args.json else format_summary(summary))
    return 0
