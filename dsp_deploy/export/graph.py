"""A small mutable graph the export passes rewrite, with numpy initializers.

ONNX protobufs are awkward to edit in place (repeated fields, no producer/consumer index), so
the exporter works on this form and converts at the end. Constants live in ``Graph.consts`` as
numpy arrays; every pass reads and writes them as plain arrays.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsp_deploy.errors import ExportError


@dataclass(eq=False)
class Node:
    """One ONNX node. ``layer`` names the model layer it implements (for plans and errors).
    Compared by identity: list membership and removal in the passes are about this node, and
    field-by-field equality made them the exporter's hot spot."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    layer: str | None = None


@dataclass
class ValueInfo:
    """A graph input or output: name, numpy dtype name and shape (str = symbolic dim)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


class Graph:
    """Nodes in topological order plus named numpy constants (the initializers)."""

    def __init__(self, inputs: Sequence[ValueInfo], outputs: Sequence[ValueInfo]) -> None:
        self.nodes: list[Node] = []
        self.consts: dict[str, np.ndarray] = {}
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._counter = itertools.count()
        self.meta: dict[str, Any] = {}

    # -- naming and construction ----------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A tensor/node name not used yet."""
        used = self._names()
        while True:
            name = f"{hint}_{next(self._counter)}"
            if name not in used:
                return name

    def _names(self) -> set[str]:
        names = set(self.consts) | {v.name for v in self.inputs}
        for node in self.nodes:
            names.update(node.outputs)
            names.add(node.name)
        return names

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        """Add a constant and return its name."""
        name = self.fresh(hint)
        self.consts[name] = np.ascontiguousarray(value)
        return name

    def add(self, op: str, inputs: Sequence[str], *, attrs: dict[str, Any] | None = None, name: str | None = None,
            layer: str | None = None, output: str | None = None, before: Node | None = None) -> Node:
        """Create a node with one output (``output`` or a fresh name); insert it before ``before``
        (keeps topological order when rewriting) or append it."""
        node = Node(op, list(inputs), [output or self.fresh(f"{(layer or op)}.{op.lower()}")], dict(attrs or {}),
                    name or self.fresh(f"{layer or op}/{op}"), layer)
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def remove(self, node: Node) -> None:
        self.nodes.remove(node)

    # -- queries --------------------------------------------------------------------------
    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [node for node in self.nodes if tensor in node.inputs]

    def is_graph_output(self, tensor: str) -> bool:
        return any(v.name == tensor for v in self.outputs)

    def single_consumer(self, tensor: str) -> Node | None:
        """The only consumer of ``tensor`` (None if several, none, or it is a graph output)."""
        users = self.consumers(tensor)
        return users[0] if len(users) == 1 and not self.is_graph_output(tensor) else None

    def const_value(self, tensor: str) -> np.ndarray | None:
        return self.consts.get(tensor)

    def find_layer(self, layer: str, op: str = "Conv") -> Node:
        for node in self.nodes:
            if node.layer == layer and node.op == op:
                return node
        raise ExportError(f"no {op} node for this layer in the graph", layer=layer)

    def count(self, op: str) -> int:
        return sum(node.op == op for node in self.nodes)

    def replace_uses(self, old: str, new: str) -> None:
        """Point every consumer of ``old`` at ``new``. Graph outputs keep their names: if ``old``
        is one, ``new`` is renamed to ``old`` (or copied by an Identity if it is a graph input)."""
        for node in self.nodes:
            node.inputs = [new if t == old else t for t in node.inputs]
        if not self.is_graph_output(old):
            return
        producer = self.producer(new)
        if producer is None or self.is_graph_output(new):
            for node in self.nodes:  # the old producer is about to go; keep the name free of it
                node.outputs = [self.fresh(f"{old}.old") if t == old else t for t in node.outputs]
            self.nodes.append(Node("Identity", [new], [old], {}, self.fresh("identity"), None))
            return
        for node in self.nodes:
            if node is not producer:
                node.outputs = [self.fresh(f"{old}.old") if t == old else t for t in node.outputs]
        producer.outputs = [old if t == new else t for t in producer.outputs]
        for node in self.nodes:
            node.inputs = [old if t == new else t for t in node.inputs]

    def prune(self) -> int:
        """Remove nodes whose outputs nobody uses and unused constants; returns nodes removed."""
        removed = 0
        while True:
            live = {v.name for v in self.outputs}
            for node in self.nodes:
                live.update(node.inputs)
            dead = [n for n in self.nodes if not any(o in live for o in n.outputs)]
            if not dead:
                break
            for node in dead:
                self.nodes.remove(node)
            removed += len(dead)
        used = {t for node in self.nodes for t in node.inputs}
        for name in [c for c in self.consts if c not in used]:
            del self.consts[name]
        return removed

    def channels(self, tensor: str) -> int:
        """Channel count (axis 1) of a 4-D activation, derived from the producing node."""
        from dsp_deploy.export.shapes import channel_count

        return channel_count(self, tensor)

    def copy(self) -> Graph:
        other = Graph([ValueInfo(v.name, v.dtype, v.shape) for v in self.inputs],
                      [ValueInfo(v.name, v.dtype, v.shape) for v in self.outputs])
        other.nodes = [Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name, n.layer) for n in self.nodes]
        other.consts = dict(self.consts)
        other.meta = {k: set(v) if isinstance(v, set) else v for k, v in self.meta.items()}
        other._counter = itertools.count(next(self._counter))
        return other


def index_array(indices: Iterable[int]) -> np.ndarray:
    """Gather indices as ONNX wants them: non-negative int64."""
    return np.asarray(list(indices), dtype=np.int64)
