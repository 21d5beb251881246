"""What the export passes know about the model besides the graph: a typed pass context.

A plain graph is built from a topology and a per-conv structure (build.py); the passes read them
(lower-conv lowers each conv as its structure allows, narrow-streams follows the topology's
residual streams) and record what they did (layers lowered, streams narrowed, fp16 applied).
Each ``Graph`` owns one context; ``Graph.copy`` copies it, so a pass on one copy (narrowing,
lowering a candidate) never changes what another copy sees.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dsp_deploy.models.topology import Topology
from dsp_deploy.structure import ConvStructure


@dataclass
class PassContext:
    """The model behind a graph and the passes' own records.

    topology: the network's convs and residual streams (None for hand-built test graphs);
    structure: per conv layer, its (possibly narrowed) group structure;
    lowered: layers lower-conv has rewritten (so it never lowers one twice);
    narrowed: per residual stream, (width before, width after) narrow-streams made it;
    fp16: the fp16 pass has run (its constants are float16 already)."""

    topology: Topology | None = None
    structure: dict[str, ConvStructure] = field(default_factory=dict)
    lowered: set[str] = field(default_factory=set)
    narrowed: dict[str, tuple[int, int]] = field(default_factory=dict)
    fp16: bool = False

    def copy(self) -> PassContext:
        """An independent copy (the topology and the frozen structure entries are shared)."""
        return PassContext(self.topology, dict(self.structure), set(self.lowered), dict(self.narrowed), self.fp16)
