"""Benchmark variants: a model file, what kind it is, and which backends can run it.

Kinds: ``onnx`` (ONNX Runtime), ``engine`` (TensorRT ``.engine``/``.plan`` with a JSON manifest
beside it), ``checkpoint`` (dsp-deploy ``.pt``, loaded via ``dsp_deploy.checkpoint``) and
``torchscript`` (a ``torch.jit`` archive). Detection reads at most the file's zip index or
protobuf header; nothing heavy is imported until a runner activates.
"""
from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dsp_deploy.errors import BenchError, EngineBuildError, UsageError
from dsp_deploy.runtime import registry
from dsp_deploy.runtime.trt_manifest import EngineManifest, manifest_path_for
from dsp_deploy.utils.hashing import sha256_file

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = tuple(registry.BACKENDS)
KIND_BACKENDS: dict[str, tuple[str, ...]] = {kind: registry.backends_for_kind(kind) for kind in registry.KINDS}
_ENGINE_SUFFIXES = (".engine", ".plan")
_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".pts", ".torchscript")


@dataclass(frozen=True)
class Variant:
    """One model to benchmark. ``manifest`` is the engine's manifest (engines only)."""

    name: str
    path: Path
    kind: str
    manifest: EngineManifest | None = field(default=None, compare=False, repr=False)

    @property
    def backends(self) -> tuple[str, ...]:
        """Backends able to run this kind of file."""
        return KIND_BACKENDS[self.kind]


def parse_backends(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"ort-cpu,trt"`` or a list -> validated, de-duplicated tuple; UsageError lists valid ones."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [item.strip().lower() for item in items if item and item.strip()]
    if not names:
        raise UsageError(f"no backend given; valid backends: {', '.join(BACKENDS)}")
    for name in names:
        if name not in BACKENDS:
            raise UsageError(f"unknown backend '{name}'; valid backends: {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(names))


def parse_batches(spec: str | Iterable[int]) -> tuple[int, ...]:
    """``"1,8,32"`` or a list -> positive ints in the given order (duplicates dropped)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    batches: list[int] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            value = int(item)
        except (TypeError, ValueError):
            raise UsageError(f"batch size '{item}' is not an integer") from None
        if value < 1:
            raise UsageError(f"batch size {value} must be >= 1")
        batches.append(value)
    if not batches:
        raise UsageError("no batch size given")
    return tuple(dict.fromkeys(batches))


def parse_input_shape(spec: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"3x32x32"`` (per-sample shape, no batch dim) -> (3, 32, 32)."""
    if spec is None:
        return None
    parts = spec.lower().replace(",", "x").split("x") if isinstance(spec, str) else list(spec)
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--input-shape '{spec}' is not like 3x32x32") from None
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"--input-shape '{spec}' must be positive dims like 3x32x32")
    return dims


def _looks_like_onnx(path: Path) -> bool:
    import onnx  # lazy: only for files without a telling suffix

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any parse failure means "not ONNX"
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def detect_kind(path: Path) -> str:
    """The variant kind of ``path``; a one-line BenchError if it is no model we can run."""
    if not path.exists():
        raise BenchError(f"{path}: no such file")
    if not path.is_file():
        raise BenchError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in _ENGINE_SUFFIXES:
        return "engine"
    if suffix in _TORCH_SUFFIXES:
        return "torchscript" if _is_torchscript(path) else "checkpoint"
    if suffix not in (".json", ".txt", ".yaml", ".yml", ".md", ".csv") and _looks_like_onnx(path):
        return "onnx"
    raise BenchError(
        f"{path}: not an ONNX model (.onnx), TensorRT engine (.engine/.plan) or checkpoint (.pt/.pth)"
    )


def load_manifest(engine: Path) -> EngineManifest:
    """Read the engine's manifest (``model.engine.json``) through ``EngineManifest``; BenchError if
    it is missing, not a manifest, or does not match the engine file."""
    manifest = manifest_path_for(engine)
    if not manifest.is_file():
        raise BenchError(f"{engine}: no manifest {manifest.name} beside the engine")
    try:
        data = EngineManifest.load(manifest)
    except EngineBuildError as exc:
        raise BenchError(str(exc)) from None
    _check_engine_file(engine, manifest, data)
    return data


def _check_engine_file(engine: Path, manifest: Path, data: EngineManifest) -> None:
    """BenchError if the plan's size or sha256 differs from what its manifest recorded: a
    truncated or modified engine is caught here, even where no GPU could deserialize it."""
    size, digest = data.engine_bytes, data.engine_sha256
    actual = engine.stat().st_size
    if isinstance(size, int) and not isinstance(size, bool) and size != actual:
        raise BenchError(f"{engine}: {actual} bytes, but {manifest.name} records {size} (truncated or replaced engine)")
    if isinstance(digest, str) and digest and sha256_file(engine) != digest:
        raise BenchError(f"{engine}: sha256 differs from the one in {manifest.name} (corrupted or replaced engine)")


def load_variant(path: str | Path, name: str | None = None) -> Variant:
    """Classify ``path`` into a Variant named ``name`` (default: the file stem)."""
    path = Path(path)
    kind = detect_kind(path)
    manifest = load_manifest(path) if kind == "engine" else None
    return Variant(name=name or path.stem, path=path, kind=kind, manifest=manifest)


def variants_from_args(models: Sequence[str]) -> list[Variant]:
    """CLI MODEL args (``PATH`` or ``NAME=PATH``) -> variants with unique names."""
    variants: list[Variant] = []
    for arg in models:
        name: str | None = None
        if "=" in arg and not Path(arg).exists():
            name, _, arg = arg.partition("=")
            if not name or "/" in name:
                raise UsageError(f"model '{name}={arg}': NAME=PATH needs a plain name")
        variants.append(load_variant(arg, name))
    seen: dict[str, int] = {}
    unique: list[Variant] = []
    for variant in variants:
        clash = sum(v.name == variant.name for v in variants) > 1
        label = f"{variant.path.parent.name}/{variant.name}" if clash else variant.name
        if label in seen:
            seen[label] += 1
            label = f"{label}#{seen[label]}"
        else:
            seen[label] = 1
        unique.append(Variant(label, variant.path, variant.kind, variant.manifest))
    return unique


def engine_batch_ranges(variant: Variant) -> dict[str, tuple[int, int]]:
    """The (min, max) batch the engine's profile allows, from its manifest's ``batch`` entry (under
    the key ``"*"``: it holds for every input). An empty dict means no limit is known."""
    if variant.manifest is None:
        return {}
    try:
        low = int(variant.manifest.batch["min"])
        return {"*": (low, int(variant.manifest.batch.get("max", low)))}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BenchError(f"{manifest_path_for(variant.path)}: malformed batch profile in the engine manifest "
                         f"({type(exc).__name__}: {str(exc)[:120]})") from None


def check_batches(variant: Variant, batches: Sequence[int]) -> None:
    """Fail early (one-line BenchError) on a batch an engine's profile does not allow.

    ONNX fixed batch dims are checked by the runner's input specs once the session is up.
    """
    if variant.kind != "engine":
        return
    for tensor, (low, high) in engine_batch_ranges(variant).items():
        for batch in batches:
            if not low <= batch <= high:
                where = "" if tensor == "*" else f" for input '{tensor}'"
                raise BenchError(
                    f"{variant.path}: batch {batch} is outside the engine profile range {low}..{high}{where}"
                )
