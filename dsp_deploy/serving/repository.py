"""Write and read Triton model repositories: ``NAME/config.pbtxt`` + ``NAME/1/model.onnx|model.plan``,
optionally a preprocessing model (uint8 HWC image -> normalised float NCHW) and an ensemble
``NAME_image`` that chains it in front of the model. The whole repository is assembled in a
temporary folder and renamed into place, after every config has been parsed back and checked.
"""
from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.bench.variants import load_variant
from dsp_deploy.data.info import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from dsp_deploy.errors import BenchError, ServingError
from dsp_deploy.models import get_config
from dsp_deploy.runtime.trt_manifest import manifest_path_for
from dsp_deploy.serving.config import (
    PLATFORMS,
    TRITON_TYPES,
    ModelIO,
    TensorIO,
    build_config,
    check_config,
    checked_text,
    engine_io,
    model_config_pb2,
    onnx_io,
    parse_config,
)
from dsp_deploy.utils.atomic import atomic_directory

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
PRE_IN, PRE_OUT = "image", "pixels"


@dataclass
class RepoOptions:
    """How to configure every model: batching, instances, device kind, labels, preprocessing."""

    max_batch: int = 32
    queue_delay_us: int = 1000
    instances: int = 1
    gpu: bool = False
    labels: Path | None = None
    preprocess: bool = False
    mean: tuple[float, float, float] | None = None  # default: the model family's dataset statistics
    std: tuple[float, float, float] | None = None


def model_io(spec: str, max_batch: int) -> ModelIO:
    """``[NAME=]PATH`` (ONNX file or engine with manifest) -> its ModelIO; NAME defaults to the file stem."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    if not _NAME.match(name):
        raise ServingError(f"model name '{name}' must use letters, digits, '_', '.', '-' only")
    try:
        variant = load_variant(path, name)
    except BenchError as exc:
        raise ServingError(f"model '{name}': {exc}") from None
    if variant.kind == "onnx":
        return onnx_io(variant.path, name, max_batch)
    if variant.kind == "engine":
        return engine_io(variant.path, name, variant.manifest)
    raise ServingError(f"model '{name}': {path} is a {variant.kind}, not an ONNX file or engine; export it first")


def family_stats(io: ModelIO) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation of the dataset the model family trains on (CIFAR-10 or ImageNet)."""
    model = io.meta.get("dsp_deploy.model")
    cifar = model is not None and get_config(model).family == "cifar"
    return (CIFAR10_MEAN, CIFAR10_STD) if cifar else (IMAGENET_MEAN, IMAGENET_STD)


def preprocess_onnx(height: int, width: int, mean: Sequence[float], std: Sequence[float]) -> bytes:
    """ONNX model: uint8 [N,H,W,3] ``image`` -> float32 [N,3,H,W] ``pixels`` = (x/255 - mean) / std."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    scale = numpy_helper.from_array((1.0 / (255.0 * np.asarray(std))).astype(np.float32), "scale")
    shift = numpy_helper.from_array((np.asarray(mean) / np.asarray(std)).astype(np.float32), "shift")
    nodes = [helper.make_node("Cast", [PRE_IN], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "scale"], ["m"]),
             helper.make_node("Sub", ["m", "shift"], ["s"]),
             helper.make_node("Transpose", ["s"], [PRE_OUT], perm=[0, 3, 1, 2])]
    graph = helper.make_graph(nodes, "preprocess",
                              [helper.make_tensor_value_info(PRE_IN, TensorProto.UINT8, ["batch", height, width, 3])],
                              [helper.make_tensor_value_info(PRE_OUT, TensorProto.FLOAT, ["batch", 3, height, width])],
                              [scale, shift])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ensemble_config(io: ModelIO, pre_name: str, name: str) -> Any:
    """Ensemble ``name``: image -> ``pre_name`` -> ``io.name`` -> the model's outputs."""
    pb = model_config_pb2()
    height, width = io.inputs[0].dims[1:3]
    config = pb.ModelConfig(name=name, platform="ensemble", max_batch_size=io.max_batch)
    config.input.add(name=PRE_IN, data_type=pb.TYPE_UINT8, dims=[height, width, 3])
    for t in io.outputs:
        config.output.add(name=t.name, data_type=pb.DataType.Value(TRITON_TYPES[t.dtype]), dims=list(t.dims))
    pre = config.ensemble_scheduling.step.add(model_name=pre_name, model_version=-1)
    pre.input_map[PRE_IN], pre.output_map[PRE_OUT] = PRE_IN, PRE_OUT
    main = config.ensemble_scheduling.step.add(model_name=io.name, model_version=-1)
    main.input_map[io.inputs[0].name] = PRE_OUT
    for t in io.outputs:
        main.output_map[t.name] = t.name
    return config


def _preprocessable(io: ModelIO) -> bool:
    first = io.inputs[0]
    return (io.kind == "onnx" and len(io.inputs) == 1 and first.dtype == "float32" and len(first.dims) == 3
            and first.dims[0] == 3 and min(first.dims[1:]) > 0 and io.max_batch > 0)


def _write_model(root: Path, io: ModelIO, text: str, payload: Path | bytes, filename: str) -> None:
    folder = root / io.name
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(text)
    if isinstance(payload, bytes):
        (folder / "1" / filename).write_bytes(payload)
        return
    shutil.copyfile(payload, folder / "1" / filename)
    if io.kind == "engine":  # the manifest travels with the plan: serving and checks read it
        shutil.copyfile(manifest_path_for(payload), folder / "1" / f"{filename}.json")  # model_io loaded it


def build_repository(specs: Sequence[str], out: str | Path, options: RepoOptions) -> list[str]:
    """Write the repository ``out`` (replaced as a whole); returns the model names written."""
    ios = [model_io(spec, options.max_batch) for spec in specs]
    names = [io.name for io in ios]
    if len(set(names)) != len(names):
        raise ServingError(f"two models share a name in {names}; name them NAME=PATH")
    written: list[tuple[ModelIO, str, Path | bytes, str]] = []  # model, config text, file content, file name
    for io in ios:
        labels = "labels.txt" if options.labels else None
        text = checked_text(build_config(io, gpu=options.gpu, instances=options.instances,
                                         queue_delay_us=options.queue_delay_us, labels=labels), io)
        written.append((io, text, io.path, PLATFORMS[io.kind][1]))
        if not options.preprocess:
            continue
        if not _preprocessable(io):
            raise ServingError(f"model '{io.name}': preprocessing needs one float32 [N,3,H,W] input with fixed H, W")
        mean, std = family_stats(io)
        height, width = io.inputs[0].dims[1:]
        pre = ModelIO(f"{io.name}_preprocess", "onnx", io.path, [TensorIO(PRE_IN, "uint8", (height, width, 3))],
                      [TensorIO(PRE_OUT, "float32", (3, height, width))], io.max_batch)
        pre_text = checked_text(build_config(pre, gpu=options.gpu, instances=options.instances,
                                             queue_delay_us=options.queue_delay_us), pre)
        blob = preprocess_onnx(height, width, options.mean or mean, options.std or std)
        written.append((pre, pre_text, blob, "model.onnx"))
        ens = ensemble_config(io, pre.name, f"{io.name}_image")
        written.append((ModelIO(ens.name, "ensemble", io.path, [], [], io.max_batch), checked_text(ens, None), b"", ""))
    with atomic_directory(out) as tmp:
        for io, text, payload, filename in written:
            if io.kind == "ensemble":
                (tmp / io.name / "1").mkdir(parents=True)
                (tmp / io.name / "config.pbtxt").write_text(text)
            else:
                _write_model(tmp, io, text, payload, filename)
            if options.labels and io.name in names:
                shutil.copyfile(options.labels, tmp / io.name / "labels.txt")
        read_repository(tmp)
    return [io.name for io, *_ in written]


@dataclass
class RepoModel:
    """One model of a repository as read back: its parsed config and model file (None for ensembles)."""

    name: str
    config: Any
    path: Path | None


def read_repository(root: str | Path) -> list[RepoModel]:
    """Every model of a repository, configs parsed and checked against the model files they ship."""
    root = Path(root)
    if not root.is_dir():
        raise ServingError(f"{root}: no such model repository")
    models = []
    for folder in sorted(p for p in root.iterdir() if (p / "config.pbtxt").is_file()):
        config = parse_config((folder / "config.pbtxt").read_text(), f"model '{folder.name}'")
        if config.platform == "ensemble":
            models.append(RepoModel(folder.name, config, None))
            continue
        versions = sorted((int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()))
        filename = config.default_model_filename or ("model.plan" if "tensorrt" in config.platform else "model.onnx")
        path = folder / str(versions[-1]) / filename if versions else None
        if path is None or not path.is_file():
            raise ServingError(f"model '{folder.name}': no model file {filename} in a version folder")
        check_config(config, model_io(f"{folder.name}={path}", config.max_batch_size))
        models.append(RepoModel(folder.name, config, path))
    if not models:
        raise ServingError(f"{root}: no model folder with a config.pbtxt")
    _check_ensembles(models)
    return models


def _check_ensembles(models: list[RepoModel]) -> None:
    by_name = {m.name: m for m in models}
    for m in models:
        if m.config.platform != "ensemble":
            continue
        for step in m.config.ensemble_scheduling.step:
            target = by_name.get(step.model_name)
            if target is None:
                raise ServingError(f"model '{m.name}': ensemble step uses unknown model '{step.model_name}'")
            inputs = {t.name for t in target.config.input}
            unknown = sorted(set(step.input_map) - inputs)
            if unknown:
                raise ServingError(f"model '{m.name}': step '{step.model_name}' has no input(s) {unknown}")
