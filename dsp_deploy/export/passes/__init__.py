"""Export passes: each rewrites one pattern (``check`` returns a match or a ``NoMatch`` saying why
not, ``rewrite`` consumes the match) and keeps the graph numerically equivalent (see each
module's docstring for the math); ``run`` reports where it applied and why not elsewhere."""
from __future__ import annotations

from dsp_deploy.export.passes.base import Match, NoMatch, Pass, PassResult
from dsp_deploy.export.passes.compose_gathers import ComposeGathers
from dsp_deploy.export.passes.dead_channels import RemoveDeadChannels
from dsp_deploy.export.passes.fold_batchnorm import FoldBatchNorm
from dsp_deploy.export.passes.fold_gather import FoldGatherIntoConv
from dsp_deploy.export.passes.fp16 import CastToFloat16
from dsp_deploy.export.passes.gather_to_slice import GatherToSlice
from dsp_deploy.export.passes.hoist_gather import HoistGather
from dsp_deploy.export.passes.lower_conv import LowerConv
from dsp_deploy.export.passes.narrow_streams import NarrowStreams
from dsp_deploy.export.passes.reorder_filters import ReorderFilters

__all__ = ["CastToFloat16", "ComposeGathers", "FoldBatchNorm", "FoldGatherIntoConv", "GatherToSlice", "HoistGather",
           "LowerConv", "Match", "NarrowStreams", "NoMatch", "Pass", "PassResult", "RemoveDeadChannels",
           "ReorderFilters"]
