"""Validation of a ModelStructure against its model's topology.

Rules (each error names the layer):
- every conv of the model has exactly one entry, and no entry names an unknown conv;
- in/out channels, kernel size and stride equal the model's;
- coupling: a conv may only read channels that are produced. Inside a block the producer is
  the previous conv (its kept filters). For a residual stream the live channels are the union
  of the kept filters of every producer that adds into it (stem or downsample conv and the
  last conv of each block), so producers may prune different channels, but a consumer may
  not read a channel that no producer writes.
"""
from __future__ import annotations

from dsp_deploy.errors import ModelError, StructureError
from dsp_deploy.models.topology import Topology
from dsp_deploy.structure.ir import ConvStructure, ModelStructure


def topology_for(structure: ModelStructure) -> Topology:
    """The topology of the structure's model (StructureError if the model is unknown)."""
    from dsp_deploy.models import topology

    try:
        return topology(structure.model, structure.num_classes, structure.input_size, structure.in_channels)
    except ModelError as exc:
        raise StructureError(f"structure names an {exc}") from None


def live_channels(structure: ModelStructure, topo: Topology, source: str) -> set[int]:
    """Channels actually produced at ``source`` (a conv name, a ``stream:<id>`` or "input")."""
    if source == "input":
        return set(range(3))
    if source.startswith("stream:"):
        stream = topo.stream(source)
        return {f for producer in stream.producers for f in structure.layer(producer).kept_filters}
    return set(structure.layer(source).kept_filters)


def validate_structure(structure: ModelStructure, topo: Topology | None = None) -> None:
    """Raise StructureError on the first rule a layer breaks (see module docstring)."""
    topo = topo or topology_for(structure)
    names = [l.name for l in structure.layers]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise StructureError("listed more than once", layer=name)
        seen.add(name)
        if not topo.has_conv(name):
            raise StructureError(f"model {structure.model} has no such conv", layer=name)
    for spec in topo.convs:
        if spec.name not in seen:
            raise StructureError(f"conv of {structure.model} has no entry in the structure", layer=spec.name)
    for layer in structure.layers:
        _check_shape(layer, topo)
    for layer in structure.layers:
        spec = topo.conv(layer.name)
        live = live_channels(structure, topo, spec.reads)
        dead = sorted(set(layer.read_channels) - live)
        if dead:
            where = f"stream '{spec.reads[7:]}'" if spec.reads.startswith("stream:") else f"'{spec.reads}'"
            raise StructureError(
                f"reads channel(s) {dead[:8]} of {where} that no producer writes (pruned filters)", layer=layer.name)


def _check_shape(layer: ConvStructure, topo: Topology) -> None:
    spec = topo.conv(layer.name)
    ours = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride)
    theirs = (spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride)
    if ours != theirs:
        raise StructureError(
            f"shape (in, out, kernel, stride) = {ours} does not match the model's {theirs}", layer=layer.name)
