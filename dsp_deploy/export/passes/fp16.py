"""The fp16 variant: every float constant becomes float16, the input is cast to float16 once
and the logits back to float32.

Strongly typed TensorRT (TensorRT 11, TensorRT for RTX) takes precision from the ONNX types,
so this is how a half-precision engine is requested. Interfaces stay float32 so callers and
benchmarks feed the same arrays to both variants.
"""
from __future__ import annotations

import numpy as np

from dsp_deploy.export.graph import Graph, Node
from dsp_deploy.export.passes.base import Match, Pass, PassResult

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto enum values


class CastToFloat16(Pass[Match]):
    """A graph-level pass: ``run`` rewrites constants, inputs and outputs (no per-node matching)."""

    name = "fp16"

    def matches(self, node: Node) -> bool:
        return False

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(self.name)
        if graph.context.fp16:
            result.skipped["graph"] = "already float16"
            return result
        for name, value in list(graph.consts.items()):
            if value.dtype == np.float32:
                graph.consts[name] = value.astype(np.float16)
                result.applied += 1
        for value in graph.inputs:
            if value.dtype == "float32":
                cast = Node("Cast", [value.name], [graph.fresh(f"{value.name}.fp16")], {"to": FLOAT16},
                            graph.fresh("cast_input"), None)
                for node in graph.consumers(value.name):
                    node.inputs = [cast.outputs[0] if t == value.name else t for t in node.inputs]
                graph.insert(cast, first=True)
        for value in graph.outputs:
            if value.dtype == "float32":
                inner = graph.fresh(f"{value.name}.fp16")
                producer = graph.producer(value.name)
                if producer is not None:
                    producer.outputs = [inner if t == value.name else t for t in producer.outputs]
                for node in graph.consumers(value.name):
                    node.inputs = [inner if t == value.name else t for t in node.inputs]
                graph.insert(Node("Cast", [inner], [value.name], {"to": FLOAT}, graph.fresh("cast_output"), None))
        graph.context.fp16 = True
        return result
