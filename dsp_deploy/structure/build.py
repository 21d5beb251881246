"""Constructors and clean-ups for structures."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dsp_deploy.models.topology import Topology
from dsp_deploy.structure.ir import PRUNED, ConvStructure, ModelStructure


def dense_structure(topo: Topology, metadata: Mapping[str, Any] | None = None) -> ModelStructure:
    """The unpruned structure of a model: every conv one group, all filters, all inputs."""
    layers = tuple(
        ConvStructure.dense(c.name, c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in topo.convs)
    return ModelStructure(topo.model, topo.num_classes, topo.input_size, layers, dict(metadata or {}))


def drop_dead_reads(structure: ModelStructure, topo: Topology) -> ModelStructure:
    """Remove from every group the input channels nobody produces (pruned upstream filters),
    and prune filters of inner convs that no group of the next conv reads.

    Repeats until nothing changes, so chains of dead channels disappear too.
    """
    from dsp_deploy.structure.validate import live_channels

    current = structure
    while True:
        updates: dict[str, ConvStructure] = {}
        for spec in topo.convs:
            layer = updates.get(spec.name, current.layer(spec.name))
            live = live_channels(current, topo, spec.reads)
            inputs = [tuple(c for c in chans if c in live) for chans in layer.group_inputs]
            groups = list(layer.filter_groups)
            for g, chans in enumerate(inputs):
                if not chans:  # a group left with nothing to read produces zeros: prune its filters
                    groups = [PRUNED if fg == g else fg for fg in groups]
            if inputs != list(layer.group_inputs) or groups != list(layer.filter_groups):
                updates[spec.name] = layer.replace(filter_groups=groups, group_inputs=inputs, groups=layer.groups)
        for spec in topo.convs:
            if spec.reads.startswith("stream:") or spec.reads == "input":
                continue
            consumer = updates.get(spec.name, current.layer(spec.name))
            producer = updates.get(spec.reads, current.layer(spec.reads))
            read = set(consumer.read_channels)
            groups = [g if (f in read or g == PRUNED) else PRUNED for f, g in enumerate(producer.filter_groups)]
            if groups != list(producer.filter_groups):
                updates[spec.reads] = producer.replace(filter_groups=groups, groups=producer.groups)
        if not updates:
            return current
        current = current.with_layers(updates)
