"""The pass pipeline: plain graph + per-layer choices -> lowered graph.

Order matters: residual streams are narrowed to their live channels first (a no-op when the
exporter already did so on the plain graph, or when every stream channel is live, as in DSP
structures with an unpruned stem); BatchNorm folding next (lowering needs W and b); then the
lowering, which leaves restore Gathers; hoist + compose turn restore-then-consumer Gathers into single ones
(channel-order propagation); folding moves the remaining ones into the producing convs where
the plan says so (aligned residual writes, inner convs producing their consumer's order);
dead channels go, the remaining producers permute their filters into their consumers' order
(identity Gathers vanish), contiguous Gathers become Slices; fp16 last.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from dsp_deploy.export.graph import Graph
from dsp_deploy.export.passes import (
    CastToFloat16,
    ComposeGathers,
    FoldBatchNorm,
    FoldGatherIntoConv,
    GatherToSlice,
    HoistGather,
    LowerConv,
    NarrowStreams,
    Pass,
    PassResult,
    RemoveDeadChannels,
    ReorderFilters,
)
from dsp_deploy.export.plan import LayerChoice

log = logging.getLogger(__name__)


def build_passes(choices: Mapping[str, LayerChoice], *, fp16: bool = False, slices: bool = True) -> list[Pass]:
    """The passes that lower a plain graph by ``choices``, in the order they run."""
    fold = {name for name, choice in choices.items() if choice.aligned}
    passes: list[Pass] = [NarrowStreams(), FoldBatchNorm(), LowerConv(choices), HoistGather(), ComposeGathers(),
                          FoldGatherIntoConv(fold), ComposeGathers(), RemoveDeadChannels(), ReorderFilters(),
                          ComposeGathers()]
    if slices:
        passes.append(GatherToSlice())
    if fp16:
        passes.append(CastToFloat16())
    return passes


def lower_graph(graph: Graph, choices: Mapping[str, LayerChoice], *, fp16: bool = False,
                slices: bool = True) -> list[PassResult]:
    """Rewrite ``graph`` in place according to ``choices``; returns each pass's report."""
    results = [p.run(graph) for p in build_passes(choices, fp16=fp16, slices=slices)]
    for result in results:
        log.debug("pass %s applied %d time(s)", result.name, result.applied)
    return results
