"""Conversion of the pass graph to an ONNX ModelProto (dynamic batch axis, chosen opset)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

    from dsp_deploy.export.graph import Graph

PRODUCER = "dsp-deploy"


def to_model(graph: Graph, opset: int = 17, metadata: dict[str, str] | None = None) -> "onnx.ModelProto":
    """Build the ModelProto; layer names go into each node's doc_string for traceability."""
    from onnx import helper, numpy_helper

    from dsp_deploy import __version__

    def value(v):
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(v.dtype))
        return helper.make_tensor_value_info(v.name, elem, list(v.shape))

    nodes = []
    for node in graph.nodes:
        proto = helper.make_node(node.op, node.inputs, node.outputs, name=node.name, **node.attrs)
        if node.layer:
            proto.doc_string = f"layer={node.layer}"
        nodes.append(proto)
    inits = [numpy_helper.from_array(np.asarray(arr), name) for name, arr in graph.consts.items()]
    proto_graph = helper.make_graph(nodes, "dsp_deploy", [value(v) for v in graph.inputs],
                                    [value(v) for v in graph.outputs], inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(proto_graph, opset_imports=opsets, producer_name=PRODUCER, producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(opsets)  # oldest IR that has the opset: widest reader support
    for key, text in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, text
    return model
