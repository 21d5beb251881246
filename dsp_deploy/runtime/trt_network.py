"""ONNX -> TensorRT network: the lazy `NetworkFromOnnx` loader (network created by Polygraphy),
per-node parser errors, and a plain-data summary of the parsed network (layer types, names, convolution group counts).

The summary is what the manifest records and what the export tests assert on ("TensorRT parses
the exported model with zero errors and sees grouped convolutions").
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dsp_deploy.errors import EngineBuildError
from dsp_deploy.runtime.polygraphy import polygraphy_trt
from dsp_deploy.runtime.trt_flavour import (
    LogCapture,
    dtype_name,
    flavour_version,
    one_line,
    trt_logger,
    trt_module,
)

log = logging.getLogger(__name__)


class BaseLoader:
    """A lazy step: the constructor only stores arguments, calling the object does the work."""

    def __call__(self) -> Any:
        return self.call_impl()

    def call_impl(self) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class TensorInfo:
    """A network input/output: name, numpy-style dtype, shape (-1 = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerInfo:
    """One network layer; the convolution fields are set for (de)convolutions only."""

    index: int
    name: str
    type: str
    output_dtype: str | None = None
    output_shape: tuple[int, ...] | None = None
    num_groups: int | None = None
    kernel: tuple[int, ...] | None = None
    num_output_maps: int | None = None
    stride: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the unset convolution fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class NetworkSummary:
    """What TensorRT made of an ONNX file (plain data: no TensorRT objects inside)."""

    flavour: str
    version: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layers: tuple[LayerInfo, ...] = field(default=())

    @property
    def convolutions(self) -> list[LayerInfo]:
        """Convolution and deconvolution layers, in network order."""
        return [layer for layer in self.layers if layer.num_groups is not None]

    @property
    def conv_groups(self) -> dict[str, int]:
        """Convolution layer name -> group count."""
        return {layer.name: int(layer.num_groups or 1) for layer in self.convolutions}

    @property
    def precision(self) -> str:
        """``float32``/``float16``/... from the conv and matmul output types; ``mixed(...)`` if several."""
        compute = {"CONVOLUTION", "DECONVOLUTION", "MATRIX_MULTIPLY"}
        dtypes = sorted({l.output_dtype for l in self.layers if l.type in compute and l.output_dtype})
        if not dtypes:
            dtypes = sorted({t.dtype for t in self.inputs + self.outputs})
        return dtypes[0] if len(dtypes) == 1 else f"mixed({','.join(dtypes)})"


@dataclass
class ParsedNetwork:
    """A parsed network plus the objects that must outlive it (the parser owns the weights)."""

    module: ModuleType
    flavour: str
    builder: Any
    network: Any
    parser: Any
    source: Path

    def inputs(self) -> tuple[TensorInfo, ...]:
        """The network inputs (name, dtype, shape with -1 for dynamic dims)."""
        return tuple(_tensor_info(self.network.get_input(i)) for i in range(self.network.num_inputs))

    def summary(self) -> NetworkSummary:
        """Plain-data summary of inputs, outputs and layers."""
        return summarize_network(self.module, self.flavour, self.network)


def _tensor_info(tensor: Any) -> TensorInfo:
    return TensorInfo(tensor.name, dtype_name(tensor.dtype), tuple(int(d) for d in tensor.shape))


_CONV_TYPES = {"CONVOLUTION": "IConvolutionLayer", "DECONVOLUTION": "IDeconvolutionLayer"}


def _layer_info(module: ModuleType, index: int, layer: Any) -> LayerInfo:
    kind = layer.type.name
    out = layer.get_output(0) if layer.num_outputs else None
    info: dict[str, Any] = {
        "index": index,
        "name": layer.name,
        "type": kind,
        "output_dtype": dtype_name(out.dtype) if out is not None else None,
        "output_shape": tuple(int(d) for d in out.shape) if out is not None else None,
    }
    if kind in _CONV_TYPES:
        layer.__class__ = getattr(module, _CONV_TYPES[kind])  # downcast, as TensorRT's samples do
        info.update(
            num_groups=int(layer.num_groups),
            kernel=tuple(int(k) for k in layer.kernel_size_nd),
            num_output_maps=int(layer.num_output_maps),
            stride=tuple(int(s) for s in layer.stride_nd),
        )
    return LayerInfo(**info)


def summarize_network(module: ModuleType, flavour: str, network: Any) -> NetworkSummary:
    """Read inputs, outputs and every layer (type, name, conv groups/kernel/maps) of ``network``."""
    return NetworkSummary(
        flavour=flavour,
        version=flavour_version(module),
        inputs=tuple(_tensor_info(network.get_input(i)) for i in range(network.num_inputs)),
        outputs=tuple(_tensor_info(network.get_output(i)) for i in range(network.num_outputs)),
        layers=tuple(_layer_info(module, i, network.get_layer(i)) for i in range(network.num_layers)),
    )


def _onnx_node_index(path: Path, name: str) -> int | None:
    """Index of the node called ``name`` in the ONNX graph (for errors the parser leaves unplaced)."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - only an error-message nicety
        return None
    return next((i for i, node in enumerate(graph.node) if node.name == name), None)


def _describe_errors(parser: Any, capture: LogCapture, path: Path) -> tuple[str, str | None]:
    """One line for all parser errors, and the name of the first node they concern."""
    parts: list[str] = []
    first_node: str | None = None
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        index, name, op = int(err.node()), err.node_name(), err.node_operator()
        func = err.func() or ""
        if index < 0 and not name:
            # Some importers (e.g. ScatterElements) do not fill in the node; the parser's log does.
            placed = [(n, o) for n, o in capture.parsed_nodes if func.endswith(o)]
            if placed:
                name, op = placed[-1]
                index = _onnx_node_index(path, name) if name else None
                index = -1 if index is None else index
        code = getattr(err.code(), "name", str(err.code()))
        if code == "MODEL_DESERIALIZE_FAILED":
            parts.append("not a valid ONNX model (corrupt or truncated protobuf) [MODEL_DESERIALIZE_FAILED]")
            continue
        where = f"node {index} '{name}' ({op})" if name or index >= 0 else "model"
        parts.append(f"{where}: {one_line(err.desc(), 240)} [{code}]")
        first_node = first_node or (name or None)
    if not parts:  # parse() returned False without recording an error
        parts.append(capture.last_error() or "unknown parser failure")
    more = f" (+{len(parts) - 1} more: {'; '.join(parts[1:])})" if len(parts) > 1 else ""
    return parts[0] + more, first_node


class NetworkFromOnnx(BaseLoader):
    """Parse an ONNX file into a strongly typed TensorRT network (precision = the ONNX types)."""

    def __init__(self, path: str | os.PathLike[str], *, flavour: str | None = None) -> None:
        self.path = Path(path)
        self.flavour = flavour

    def call_impl(self) -> ParsedNetwork:
        path = self.path
        if not path.exists():
            raise EngineBuildError(f"ONNX file not found: {path}")
        if not path.is_file():
            raise EngineBuildError(f"ONNX path is not a file: {path}")
        module, flavour = trt_module(self.flavour)
        trt_log = trt_logger(module)
        # Polygraphy's CreateNetwork makes builder + network (with our logger); we parse ourselves,
        # since its parse step reports errors without the node index/name/op we name in one line.
        strongly_typed = hasattr(module.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")  # RTX/TRT 11: always
        builder, network = polygraphy_trt(module, flavour).CreateNetwork(strongly_typed=strongly_typed)()
        parser = module.OnnxParser(network, trt_log.logger)
        label = f"{flavour} {flavour_version(module)}"
        with trt_log.capture() as capture:
            ok = parser.parse_from_file(str(path))
        if not ok:
            message, node = _describe_errors(parser, capture, path)
            raise EngineBuildError(f"{label} cannot parse {path.name}: {message}", layer=node)
        if network.num_outputs == 0:
            raise EngineBuildError(f"{label}: {path.name} has no graph outputs (empty or not an ONNX model)")
        log.debug("parsed %s with %s: %d layers", path, label, network.num_layers)
        return ParsedNetwork(module, flavour, builder, network, parser, path)


def parse_onnx_network(path: str | os.PathLike[str], *, flavour: str | None = None) -> NetworkSummary:
    """Parse ``path`` with TensorRT and summarize the layers; raises ``EngineBuildError`` on any
    parser error (so "no exception" means "zero parser errors")."""
    return NetworkFromOnnx(path, flavour=flavour)().summary()
