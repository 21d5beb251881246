"""Triton model configurations (``config.pbtxt``) for exported models and engines.

A model's inputs and outputs are read from the ONNX graph or the engine manifest (batch range
from the engine's optimisation profile), turned into a ``ModelConfig`` message of Triton's own
model-config protobuf (shipped by ``tritonclient``), printed as text, and every text is parsed
back and checked against the model before anyone writes or serves it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import ServingError

if TYPE_CHECKING:
    from dsp_deploy.engines.manifest import EngineManifest

# numpy dtype names <-> Triton data types.
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int64": "TYPE_INT64",
                "int32": "TYPE_INT32", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}
NUMPY_TYPES = {v: k for k, v in TRITON_TYPES.items()}
# ONNX TensorProto element types -> numpy dtype names.
_ONNX_TYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 3: "int8", 2: "uint8", 9: "bool"}
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "engine": ("tensorrt_plan", "model.plan")}


@dataclass(frozen=True)
class TensorIO:
    """One input or output: name, numpy dtype name, per-sample dims (batch dim excluded when batched; -1 dynamic)."""

    name: str
    dtype: str
    dims: tuple[int, ...]


@dataclass
class ModelIO:
    """What a model file takes and gives; ``max_batch`` 0 means the first dim is not a batch dim."""

    name: str
    kind: str  # "onnx" or "engine"
    path: Path
    inputs: list[TensorIO]
    outputs: list[TensorIO]
    max_batch: int
    preferred: tuple[int, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)


def model_config_pb2() -> Any:
    """Triton's model-config protobuf module (from ``tritonclient``, the ``serve`` extra)."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb
    except ImportError as exc:
        raise ServingError(f"tritonclient is not installed ({exc}); install dsp-deploy[serve]") from None
    return pb


def _dtype(name: str, elem: int, where: str) -> str:
    if elem not in _ONNX_TYPES:
        raise ServingError(f"{where}: tensor '{name}' has an ONNX element type ({elem}) Triton configs do not cover")
    return _ONNX_TYPES[elem]


def onnx_io(path: Path, name: str, max_batch: int) -> ModelIO:
    """Inputs/outputs of an ONNX file; a symbolic first dim on every tensor makes it a batched model
    (unless ``max_batch`` is 0: then the dims keep the first dim, as Triton expects)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ServingError(f"model '{name}': {path} is not a readable ONNX file ({first})") from None
    inits = {t.name for t in model.graph.initializer}
    raw = []
    for values in ([v for v in model.graph.input if v.name not in inits], list(model.graph.output)):
        raw.append([(v.name, _dtype(v.name, v.type.tensor_type.elem_type, str(path)),
                     [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim])
                    for v in values])
    batched = max_batch > 0 and all(dims and dims[0] == -1 for group in raw for _, _, dims in group)
    cut = 1 if batched else 0
    inputs, outputs = ([TensorIO(n, t, tuple(d[cut:])) for n, t, d in group] for group in raw)
    meta = {p.key: p.value for p in model.metadata_props}
    return ModelIO(name, "onnx", path, inputs, outputs, max_batch if batched else 0, meta=meta)


def engine_io(path: Path, name: str, manifest: EngineManifest) -> ModelIO:
    """Inputs/outputs of a TensorRT engine from its manifest; ``max_batch_size`` = the profile's max batch."""
    batch = manifest.batch
    try:
        inputs = [TensorIO(t["name"], t["dtype"], tuple(int(d) for d in t["shape"][1:])) for t in manifest.inputs]
        outputs = [TensorIO(t["name"], t["dtype"], tuple(int(d) for d in t["shape"][1:])) for t in manifest.outputs]
        low, opt, high = int(batch["min"]), int(batch["opt"]), int(batch["max"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ServingError(f"model '{name}': engine manifest of {path} lacks IO or batch profile ({exc})") from None
    preferred = tuple(sorted({b for b in (opt, high) if low <= b <= high}))
    return ModelIO(name, "engine", path, inputs, outputs, high, preferred)


def preferred_batches(max_batch: int) -> tuple[int, ...]:
    """Powers of two from 4 up to ``max_batch`` plus ``max_batch`` itself (what the batcher aims for)."""
    sizes = {b for b in (4, 8, 16, 32, 64, 128) if b < max_batch} | {max_batch}
    return tuple(sorted(b for b in sizes if b > 0))


def build_config(io: ModelIO, *, gpu: bool = False, instances: int = 1, queue_delay_us: int = 1000,
                 labels: str | None = None) -> Any:
    """The ``ModelConfig`` message for ``io`` (dynamic batching on when the model is batched)."""
    pb = model_config_pb2()
    platform, filename = PLATFORMS[io.kind]
    config = pb.ModelConfig(name=io.name, platform=platform, max_batch_size=io.max_batch,
                            default_model_filename=filename)
    for target, tensors in ((config.input, io.inputs), (config.output, io.outputs)):
        for t in tensors:
            target.add(name=t.name, data_type=pb.DataType.Value(TRITON_TYPES[t.dtype]), dims=list(t.dims))
    if labels:
        config.output[0].label_filename = labels
    if io.max_batch > 0:
        config.dynamic_batching.preferred_batch_size.extend(io.preferred or preferred_batches(io.max_batch))
        config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    kind = pb.ModelInstanceGroup.Kind.Value("KIND_GPU" if gpu else "KIND_CPU")
    config.instance_group.add(count=instances, kind=kind)
    return config


def config_text(config: Any) -> str:
    """``config.pbtxt`` text of a ``ModelConfig`` message."""
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_config(text: str, where: str) -> Any:
    """Parse ``config.pbtxt`` text with the model-config protobuf; ServingError naming ``where``."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ServingError(f"{where}: config.pbtxt does not parse: {exc}") from None


def tensor_list(config: Any, field_name: str) -> list[TensorIO]:
    """A parsed config's inputs or outputs as TensorIO (dims without the batch dim)."""
    pb = model_config_pb2()
    return [TensorIO(t.name, NUMPY_TYPES.get(pb.DataType.Name(t.data_type), "?"), tuple(t.dims))
            for t in getattr(config, field_name)]


def check_config(config: Any, io: ModelIO) -> None:
    """Refuse a config whose name, batch size, inputs or outputs differ from the model's."""
    where = f"model '{io.name}'"
    if config.name != io.name:
        raise ServingError(f"{where}: config names the model '{config.name}'")
    if config.max_batch_size != io.max_batch:
        raise ServingError(f"{where}: config max_batch_size {config.max_batch_size} != model's {io.max_batch}")
    for kind, want in (("input", io.inputs), ("output", io.outputs)):
        have = {t.name: t for t in tensor_list(config, kind)}
        names = {t.name for t in want}
        for t in want:
            got = have.get(t.name)
            if got is None:
                extra = sorted(set(have) - names)
                raise ServingError(f"{where}: config has no {kind} '{t.name}' (config names {extra})")
            if got != t:
                raise ServingError(f"{where}: config {kind} '{t.name}' is {got.dtype}{list(got.dims)}, "
                                   f"model has {t.dtype}{list(t.dims)}")
        if set(have) != names:
            raise ServingError(f"{where}: config {kind}s {sorted(have)} are not the model's {sorted(names)}")


def checked_text(config: Any, io: ModelIO | None) -> str:
    """Print ``config``, parse the text back and check it against ``io``; returns the text."""
    text = config_text(config)
    parsed = parse_config(text, f"model '{config.name}'")
    if io is not None:
        check_config(parsed, io)
    return text

