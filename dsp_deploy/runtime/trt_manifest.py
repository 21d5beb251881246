"""The JSON manifest written next to every engine (``model.engine.json``).

It records what the plan is (flavour, version, targets, IO names/dtypes/shapes, batch profile),
where it came from (source ONNX sha256) and what TensorRT made of the network (layer list with
convolution group counts), so benchmarks and reports never have to load the plan to know this.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dsp_deploy.errors import EngineBuildError
from dsp_deploy.utils.jsonfile import DocFormat, read_json_object

# model.engine.json; the first releases named the format "dsp-deploy-engine-manifest".
MANIFEST_FORMAT = DocFormat("engine-manifest", 1, "engine manifest", old_names=("dsp-deploy-engine-manifest",))


def manifest_path_for(engine_path: str | os.PathLike[str]) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


@dataclass
class EngineManifest:
    """Everything known about one built engine; ``to_dict()`` is the JSON written to disk."""

    engine: str  # file name of the plan, relative to the manifest
    engine_sha256: str
    engine_bytes: int
    flavour: str  # "tensorrt" or "tensorrt_rtx"
    version: str
    source_onnx: str
    source_onnx_sha256: str
    precision: str  # "float32", "float16", or "mixed(...)"
    strongly_typed: bool
    inputs: list[dict[str, Any]]  # name, dtype, shape (-1 = dynamic), profile {min, opt, max}
    outputs: list[dict[str, Any]]  # name, dtype, shape
    batch: dict[str, int]  # min, opt, max
    targets: list[str]  # ComputeCapability names, "DEFAULT" (RTX portable) or "CURRENT" (TRT)
    conv_groups: dict[str, int]  # convolution layer name -> group count
    network_layers: list[dict[str, Any]]  # every network layer: index, name, type, conv fields
    engine_layers: list[dict[str, Any]] | None = None  # IEngineInspector view, when loadable here
    engine_layers_note: str | None = None  # why engine_layers is missing
    builder_optimization_level: int | None = None
    timing_cache: str | None = None
    build_seconds: float | None = None
    lowering_plan: dict[str, Any] | None = None  # the source ONNX's plan: backend, measured, machine (lowering.py)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (format keys first)."""
        return {**MANIFEST_FORMAT.header(), **asdict(self)}

    def to_json(self) -> str:
        """Pretty JSON text with a trailing newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "manifest") -> EngineManifest:
        """Inverse of :meth:`to_dict`; ``EngineBuildError`` for a foreign, newer or incomplete file."""
        MANIFEST_FORMAT.check(data, EngineBuildError, where)
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise EngineBuildError(f"{where}: incomplete engine manifest ({exc})") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EngineManifest:
        """Read ``model.engine.json`` (or the manifest of ``model.engine`` when given the plan)."""
        path = Path(path)
        if path.suffix != ".json":
            path = manifest_path_for(path)
        return cls.from_dict(read_json_object(path, EngineBuildError, MANIFEST_FORMAT.what), where=str(path))
