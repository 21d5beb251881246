"""`dsp-deploy import-reference SRC.pt --out OUT.pt`: convert a DSP authors' TorchScript checkpoint."""
from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-reference", help="convert a checkpoint released with the DSP paper into a dsp-deploy checkpoint",
        description="Convert the DSP authors' traced TorchScript CIFAR ResNet (Compactblocks) into a "
                    "dsp-deploy checkpoint; depth and group count are inferred.")
    parser.add_argument("source", help="authors' TorchScript file, e.g. resnet56_g2.pt")
    parser.add_argument("--out", required=True, help="output checkpoint path")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the output comparison against the TorchScript model")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsp_deploy.checkpoint import save_checkpoint
    from dsp_deploy.reference.authors import import_authors_checkpoint, verify_import
    from dsp_deploy.structure import count_costs

    checkpoint = import_authors_checkpoint(args.source)
    if not args.no_verify:
        diff = verify_import(args.source, checkpoint)
        log.info("outputs match the TorchScript model (max abs diff %.2e)", diff)
    save_checkpoint(args.out, checkpoint)
    costs = count_costs(checkpoint.structure)
    print(f"wrote {args.out}: {checkpoint.model}, G={checkpoint.structure.max_groups}, "
          f"FLOPs -{costs.dsp_flops_reduction_pct:.2f}% (DSP convention), "
          f"-{costs.flops_reduction_pct:.2f}% (whole model)")
    return 0
