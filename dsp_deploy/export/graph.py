"""A small mutable graph the export passes rewrite, with numpy initializers.

ONNX protobufs are awkward to edit in place (repeated fields, no producer/consumer index), so
the exporter works on this form and converts at the end. Constants live in ``Graph.consts`` as
numpy arrays; every pass reads and writes them as plain arrays.

The graph indexes which node produces and which nodes consume each tensor, so ``producer`` and
``consumers`` cost no scan of the graph. The index stays right because a node's inputs and
outputs are tuples (no in-place edits) that a node in a graph reports to it when reassigned,
and nodes enter and leave a graph only through its methods (``nodes`` is a read-only tuple).
"""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsp_deploy.errors import ExportError
from dsp_deploy.export.context import PassContext
from dsp_deploy.export.shapes import channel_count


class Node:
    """One ONNX node. ``layer`` names the model layer it implements (for plans and errors).
    Compared by identity: list membership and removal in the passes are about this node."""

    __slots__ = ("op", "_inputs", "_outputs", "attrs", "name", "layer", "_graph")

    def __init__(self, op: str, inputs: Iterable[str], outputs: Iterable[str], attrs: dict[str, Any] | None = None,
                 name: str = "", layer: str | None = None) -> None:
        self.op = op
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.name = name
        self.layer = layer
        self._graph: Graph | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._inputs

    @inputs.setter
    def inputs(self, value: Iterable[str]) -> None:
        new = tuple(value)
        if self._graph is not None:
            self._graph._unindex_inputs(self)
        self._inputs = new
        if self._graph is not None:
            self._graph._index_inputs(self)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self._outputs

    @outputs.setter
    def outputs(self, value: Iterable[str]) -> None:
        new = tuple(value)
        if self._graph is not None:
            self._graph._unindex_outputs(self)
        self._outputs = new
        if self._graph is not None:
            self._graph._index_outputs(self)

    def __repr__(self) -> str:
        return (f"Node({self.op!r}, {list(self._inputs)}, {list(self._outputs)}, name={self.name!r}, "
                f"layer={self.layer!r})")


@dataclass
class ValueInfo:
    """A graph input or output: name, numpy dtype name and shape (str = symbolic dim)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


class Graph:
    """Nodes in topological order plus named numpy constants (the initializers) and the pass
    context (the model behind the graph, see context.py)."""

    def __init__(self, inputs: Sequence[ValueInfo], outputs: Sequence[ValueInfo]) -> None:
        self._nodes: list[Node] = []
        self.consts: dict[str, np.ndarray] = {}
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._counter = itertools.count()
        self.context = PassContext()
        self._producers: dict[str, list[Node]] = {}      # tensor -> nodes writing it (one, but while rewriting)
        self._consumers: dict[str, Counter[Node]] = {}   # tensor -> nodes reading it (x how many inputs)
        self._node_names: Counter[str] = Counter()
        self._position: dict[Node, int] | None = {}      # node -> index in _nodes; None: rebuild when asked

    # -- the node list and its indexes ------------------------------------------------------
    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in topological order (a snapshot: add/remove go through the graph)."""
        return tuple(self._nodes)

    def __contains__(self, node: object) -> bool:
        return isinstance(node, Node) and node._graph is self

    def insert(self, node: Node, *, before: Node | None = None, first: bool = False) -> Node:
        """Put a detached node into the graph: before ``before``, first, or last (the default)."""
        if node._graph is not None:
            raise ExportError(f"node '{node.name}' is in a graph already")
        if before is None and not first:
            if self._position is not None:
                self._position[node] = len(self._nodes)
            self._nodes.append(node)
        else:
            self._nodes.insert(0 if first else self._index_of(before), node)  # type: ignore[arg-type]
            self._position = None
        node._graph = self
        self._index_inputs(node)
        self._index_outputs(node)
        self._node_names[node.name] += 1
        return node

    def remove(self, node: Node) -> None:
        self._nodes.pop(self._index_of(node))
        self._position = None
        self._detach(node)

    def _detach(self, node: Node) -> None:  # out of the indexes (the caller takes it out of _nodes)
        self._unindex_inputs(node)
        self._unindex_outputs(node)
        self._node_names[node.name] -= 1
        if not self._node_names[node.name]:
            del self._node_names[node.name]
        node._graph = None

    def _index_of(self, node: Node) -> int:
        if node._graph is not self:
            raise ExportError(f"node '{node.name}' is not in this graph")
        if self._position is None:
            self._position = {n: i for i, n in enumerate(self._nodes)}
        return self._position[node]

    def _index_inputs(self, node: Node) -> None:
        for tensor in node.inputs:
            self._consumers.setdefault(tensor, Counter())[node] += 1

    def _unindex_inputs(self, node: Node) -> None:
        for tensor in node.inputs:
            users = self._consumers[tensor]
            users[node] -= 1
            if not users[node]:
                del users[node]
                if not users:
                    del self._consumers[tensor]

    def _index_outputs(self, node: Node) -> None:
        for tensor in node.outputs:
            self._producers.setdefault(tensor, []).append(node)

    def _unindex_outputs(self, node: Node) -> None:
        for tensor in node.outputs:
            writers = self._producers[tensor]
            writers.remove(node)
            if not writers:
                del self._producers[tensor]

    def _in_order(self, nodes: Iterable[Node]) -> list[Node]:
        found = list(nodes)
        return found if len(found) < 2 else sorted(found, key=self._index_of)

    def check_index(self) -> None:
        """ExportError if the producer/consumer indexes disagree with the nodes (tests call it)."""
        consumers: dict[str, Counter[Node]] = {}
        producers: dict[str, list[Node]] = {}
        for node in self._nodes:
            for tensor in node.inputs:
                consumers.setdefault(tensor, Counter())[node] += 1
            for tensor in node.outputs:
                producers.setdefault(tensor, []).append(node)
        if consumers != self._consumers or {t: set(n) for t, n in producers.items()} != \
                {t: set(n) for t, n in self._producers.items()}:
            raise ExportError("the graph's producer/consumer index is out of date")
        if Counter(n.name for n in self._nodes) != self._node_names or any(n._graph is not self for n in self._nodes):
            raise ExportError("the graph's node index is out of date")

    # -- naming and construction ----------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A tensor/node name not used yet."""
        while True:
            name = f"{hint}_{next(self._counter)}"
            if not self._used(name):
                return name

    def _used(self, name: str) -> bool:
        return (name in self.consts or name in self._producers or name in self._node_names
                or any(v.name == name for v in self.inputs))

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        """Add a constant and return its name."""
        name = self.fresh(hint)
        self.consts[name] = np.ascontiguousarray(value)
        return name

    def add(self, op: str, inputs: Sequence[str], *, attrs: dict[str, Any] | None = None, name: str | None = None,
            layer: str | None = None, output: str | None = None, before: Node | None = None) -> Node:
        """Create a node with one output (``output`` or a fresh name); insert it before ``before``
        (keeps topological order when rewriting) or append it."""
        node = Node(op, inputs, [output or self.fresh(f"{(layer or op)}.{op.lower()}")], dict(attrs or {}),
                    name or self.fresh(f"{layer or op}/{op}"), layer)
        return self.insert(node, before=before)

    # -- queries --------------------------------------------------------------------------
    def producer(self, tensor: str) -> Node | None:
        writers = self._producers.get(tensor)
        return self._in_order(writers)[0] if writers else None

    def consumers(self, tensor: str) -> list[Node]:
        """The nodes reading ``tensor``, in graph order, each once."""
        return self._in_order(self._consumers.get(tensor, ()))

    def is_graph_output(self, tensor: str) -> bool:
        return any(v.name == tensor for v in self.outputs)

    def single_consumer(self, tensor: str) -> Node | None:
        """The only consumer of ``tensor`` (None if several, none, or it is a graph output)."""
        users = self._consumers.get(tensor, ())
        return next(iter(users)) if len(users) == 1 and not self.is_graph_output(tensor) else None

    def const_value(self, tensor: str) -> np.ndarray | None:
        return self.consts.get(tensor)

    def find_layer(self, layer: str, op: str = "Conv") -> Node:
        for node in self._nodes:
            if node.layer == layer and node.op == op:
                return node
        raise ExportError(f"no {op} node for this layer in the graph", layer=layer)

    def count(self, op: str) -> int:
        return sum(node.op == op for node in self._nodes)

    def replace_uses(self, old: str, new: str) -> None:
        """Point every consumer of ``old`` at ``new``. Graph outputs keep their names: if ``old``
        is one, ``new`` is renamed to ``old`` (or copied by an Identity if it is a graph input)."""
        for node in self.consumers(old):
            node.inputs = [new if t == old else t for t in node.inputs]
        if not self.is_graph_output(old):
            return
        producer = self.producer(new)
        if producer is None or self.is_graph_output(new):
            for node in self._in_order(self._producers.get(old, ())):  # about to go; keep the name free of it
                node.outputs = [self.fresh(f"{old}.old") if t == old else t for t in node.outputs]
            self.insert(Node("Identity", [new], [old], {}, self.fresh("identity"), None))
            return
        for node in self._in_order(self._producers.get(old, ())):
            if node is not producer:
                node.outputs = [self.fresh(f"{old}.old") if t == old else t for t in node.outputs]
        producer.outputs = [old if t == new else t for t in producer.outputs]
        for node in self.consumers(new):
            node.inputs = [old if t == new else t for t in node.inputs]

    def prune(self) -> int:
        """Remove nodes whose outputs nobody uses and unused constants; returns nodes removed."""
        def dead(node: Node) -> bool:
            return not any(t in self._consumers or self.is_graph_output(t) for t in node.outputs)

        todo = [node for node in self._nodes if dead(node)]
        gone: set[Node] = set()
        while todo:
            node = todo.pop()
            if node in gone or not dead(node):
                continue
            gone.add(node)
            self._detach(node)
            todo += [p for t in node.inputs for p in self._producers.get(t, ()) if p not in gone]
        if gone:
            self._nodes = [n for n in self._nodes if n not in gone]
            self._position = None
        for name in [c for c in self.consts if c not in self._consumers]:
            del self.consts[name]
        return len(gone)

    def channels(self, tensor: str) -> int:
        """Channel count (axis 1) of a 4-D activation, derived from the producing node."""
        return channel_count(self, tensor)

    def copy(self) -> Graph:
        other = Graph([ValueInfo(v.name, v.dtype, v.shape) for v in self.inputs],
                      [ValueInfo(v.name, v.dtype, v.shape) for v in self.outputs])
        for n in self._nodes:
            other.insert(Node(n.op, n.inputs, n.outputs, dict(n.attrs), n.name, n.layer))
        other.consts = dict(self.consts)
        other.context = self.context.copy()
        other._counter = itertools.count(next(self._counter))
        return other


def index_array(indices: Iterable[int]) -> np.ndarray:
    """Gather indices as ONNX wants them: non-negative int64."""
    return np.asarray(list(indices), dtype=np.int64)
