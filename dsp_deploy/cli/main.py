"""`dsp-deploy` entry point: builds the argument parser from the subcommand modules and
turns every `DSPDeployError` into one line on stderr and a non-zero exit code."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dsp_deploy import __version__
from dsp_deploy.errors import DSPDeployError

# Each name is a module `dsp_deploy.cli.<name>` with `add_parser(subparsers)`; the parser it
# adds sets `handler=<callable(args) -> int>` as a default. Order = order in `--help`.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "train",
    "prune",
    "finetune",
    "import_reference",
    "info",
    "export",
    "build",
    "bench",
    "compare",
    "triton_repo",
    "serve",
    "accuracy_latency",
)

log = logging.getLogger("dsp_deploy")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommand modules that are not present are simply not offered."""
    parser = argparse.ArgumentParser(
        prog="dsp-deploy",
        description="Train, import, export, build and benchmark group-pruned (DSP) CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"dsp-deploy {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"dsp_deploy.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dsp_deploy.cli.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.handler(args) or 0)
    except DSPDeployError as exc:
        if args.debug:
            raise
        print(f"dsp-deploy {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"dsp-deploy {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, never a traceback
        if args.debug:
            raise
        print(
            f"dsp-deploy {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(re-run with --debug for a traceback)",
            file=sys.stderr,
        )
        return 1


def entry_point() -> None:
    """Console-script entry."""
    sys.exit(main())
