"""Network -> serialized engine: batch optimization profile, target compute capabilities,
timing cache, and the engine-inspector layer list.

`EngineBytesFromNetwork` is lazy like `NetworkFromOnnx`: it stores its settings and builds on
``__call__``. It never writes the plan itself (the caller writes plan + manifest atomically);
the only file it touches is the optional timing cache, rewritten atomically after a good build.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Union

from dsp_deploy.errors import EngineBuildError, UsageError
from dsp_deploy.runtime.polygraphy import engine_from_bytes, polygraphy_quiet, polygraphy_trt
from dsp_deploy.runtime.trt_flavour import flavour_version, name_in_message, one_line, trt_logger
from dsp_deploy.runtime.trt_network import BaseLoader, ParsedNetwork, TensorInfo
from dsp_deploy.utils.atomic import atomic_write

log = logging.getLogger(__name__)

DEFAULT_BATCH: tuple[int, int, int] = (1, 1, 32)
DEFAULT_TARGET = "DEFAULT"  # tensorrt_rtx without set_compute_capability: portable Ampere and later
CURRENT_GPU = "CURRENT"  # standard TensorRT: the GPU the build runs on

ShapeRange = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def parse_batch_range(text: str | Sequence[int]) -> tuple[int, int, int]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; one value ``"8"`` means a fixed batch of 8.

    Raises ``UsageError`` unless ``1 <= MIN <= OPT <= MAX``.
    """
    if isinstance(text, str):
        items = [p.strip() for p in text.split(",")]
        try:
            values = [int(p) for p in items]
        except ValueError:
            raise UsageError(f"--batch {text!r}: expected MIN,OPT,MAX integers, e.g. 1,8,32") from None
    else:
        values = [int(v) for v in text]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise UsageError(f"--batch {text!r}: expected MIN,OPT,MAX (three integers) or one integer")
    low, opt, high = values
    if low < 1:
        raise UsageError(f"--batch {text!r}: MIN must be >= 1, got {low}")
    if not low <= opt <= high:
        raise UsageError(f"--batch {text!r}: need MIN <= OPT <= MAX, got {low},{opt},{high}")
    return low, opt, high


_TARGET = re.compile(r"^(?:SM_?)?(\d+)(?:\.(\d+))?$")


def parse_targets(text: str | Sequence[str] | None) -> list[str] | None:
    """``"sm89,8.6,120"`` -> ``["SM89", "SM86", "SM120"]`` (names of ``ComputeCapability``).

    ``None``/empty -> ``None`` (the flavour's default). Only the syntax is checked here; whether the
    installed TensorRT for RTX knows a name is checked when building.
    """
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in (str(i).strip().upper() for i in items):
        if not item:
            continue
        match = _TARGET.match(item)
        name = f"SM{match.group(1)}{match.group(2) or ''}" if match else item
        if not (match or name.isidentifier()):
            raise UsageError(f"--target {item!r}: expected e.g. sm89, 8.9 or a ComputeCapability name")
        if name not in names:
            names.append(name)
    return names or None


@dataclass(frozen=True)
class BatchProfile:
    """Optimization profile over the batch axis (dim 0); every other dim comes from the ONNX."""

    min: int = DEFAULT_BATCH[0]
    opt: int = DEFAULT_BATCH[1]
    max: int = DEFAULT_BATCH[2]

    def resolve(self, inputs: Sequence[TensorInfo]) -> dict[str, ShapeRange]:
        """Input name -> (min, opt, max) shapes; ``EngineBuildError`` for a dynamic non-batch dim or
        a static batch dim outside the requested range."""
        shapes: dict[str, ShapeRange] = {}
        for tensor in inputs:
            dims = tensor.shape
            if not dims:
                continue
            bad = [i for i, d in enumerate(dims[1:], start=1) if d < 0]
            if bad:
                raise EngineBuildError(
                    f"input '{tensor.name}' shape {list(dims)}: dim {bad[0]} is dynamic; only the batch "
                    "axis (dim 0) may be dynamic (re-export with fixed C, H, W)"
                )
            if dims[0] >= 0 and (self.min, self.opt, self.max) != (dims[0],) * 3:
                raise EngineBuildError(
                    f"input '{tensor.name}' has a static batch size {dims[0]}, so the batch range "
                    f"{self.min},{self.opt},{self.max} cannot be built (use --batch {dims[0]} or re-export "
                    "with a dynamic batch axis)"
                )
            rest = tuple(dims[1:])
            shapes[tensor.name] = ((self.min, *rest), (self.opt, *rest), (self.max, *rest))
        return shapes


def _compute_capabilities(module: ModuleType, targets: list[str]) -> list[Any]:
    enum = getattr(module, "ComputeCapability", None)
    if enum is None:
        raise UsageError("--target needs TensorRT for RTX (tensorrt_rtx); standard TensorRT builds for its GPU")
    known = [n for n in enum.__members__ if n != "NONE"]
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise UsageError(f"--target {','.join(unknown)}: not known to this TensorRT for RTX; choose {', '.join(known)}")
    return [enum.__members__[t] for t in targets]


NetworkSource = Union[ParsedNetwork, Callable[[], ParsedNetwork]]


class EngineBytesFromNetwork(BaseLoader):
    """Build a serialized engine (bytes) from a parsed network or a loader producing one."""

    def __init__(
        self,
        network: NetworkSource,
        *,
        profile: BatchProfile | None = None,
        targets: Sequence[str] | None = None,
        timing_cache: str | os.PathLike[str] | None = None,
        opt_level: int | None = None,
    ) -> None:
        self.network = network
        self.profile = profile or BatchProfile()
        self.targets = list(targets) if targets else None
        self.timing_cache = Path(timing_cache) if timing_cache else None
        self.opt_level = opt_level
        self.build_seconds: float | None = None

    def target_names(self, flavour: str) -> list[str]:
        """Targets as recorded in the manifest."""
        if self.targets:
            return list(self.targets)
        return [DEFAULT_TARGET if flavour == "tensorrt_rtx" else CURRENT_GPU]

    def call_impl(self) -> bytes:
        parsed = self.network if isinstance(self.network, ParsedNetwork) else self.network()
        module, flavour, builder = parsed.module, parsed.flavour, parsed.builder
        if self.opt_level is not None and not 0 <= self.opt_level <= 5:
            raise UsageError(f"--opt-level {self.opt_level}: must be 0..5")
        ptrt = polygraphy_trt(module, flavour)
        from polygraphy.exception import PolygraphyException

        inputs = parsed.inputs()
        shapes = self.profile.resolve(inputs)
        profiles = None
        if any(t.shape[:1] == (-1,) for t in inputs):  # static batch: no profile needed
            profile = ptrt.Profile()
            for name, (low, opt, high) in shapes.items():
                profile.add(name, low, opt, high)
            profiles = [profile]
        settings: dict[str, Any] = dict(profiles=profiles, profiling_verbosity=module.ProfilingVerbosity.DETAILED,
                                        builder_optimization_level=self.opt_level)
        if self.targets:
            names = [c.name for c in _compute_capabilities(module, self.targets)]
            from polygraphy.backend.tensorrt_rtx import CreateConfigRTX

            sm = [(int(n[2:-1]), int(n[-1])) for n in names if re.fullmatch(r"SM\d{2,3}", n)]
            create = CreateConfigRTX(compute_capabilities=sm or None, use_gpu="CURRENT" in names and not sm, **settings)
        else:
            create = ptrt.CreateConfig(**settings)
        label = f"{flavour} {flavour_version(module)}, targets {','.join(self.target_names(flavour))}"
        trt_log = trt_logger(module)
        start = time.perf_counter()
        plan = None
        with polygraphy_quiet(), trt_log.capture() as capture:
            config = create(builder, parsed.network)
            cache = self._load_timing_cache(config, flavour)
            try:
                plan = ptrt.EngineBytesFromNetwork((builder, parsed.network, parsed.parser), config=config)()
            except PolygraphyException as exc:  # TensorRT's own error, if it logged one, says more
                if not capture.errors:
                    capture.errors.append(str(exc))
        self.build_seconds = time.perf_counter() - start
        if plan is None:
            reason = capture.last_error() or "the builder returned no engine"
            raise EngineBuildError(
                f"engine build failed ({label}) for {parsed.source.name}: {reason}",
                layer=name_in_message(reason),
            )
        if capture.warnings:
            log.info("%d TensorRT warnings during the build (-v shows them)", len(capture.warnings))
        if cache is not None:
            self._save_timing_cache(config)
        log.debug("built %s in %.2fs (%s)", parsed.source.name, self.build_seconds, label)
        return bytes(memoryview(plan))

    def _load_timing_cache(self, config: Any, flavour: str) -> Any:
        if self.timing_cache is None:
            return None
        if flavour == "tensorrt_rtx":  # its timing-cache calls are deprecated no-ops
            log.warning("--timing-cache %s ignored: TensorRT for RTX has no timing cache", self.timing_cache)
            return None
        data = b""
        if self.timing_cache.is_file():
            data = self.timing_cache.read_bytes()
        cache = config.create_timing_cache(data)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            raise EngineBuildError(f"timing cache {self.timing_cache} is corrupt or from another TensorRT/GPU")
        return cache

    def _save_timing_cache(self, config: Any) -> None:
        assert self.timing_cache is not None
        data = bytes(memoryview(config.get_timing_cache().serialize()))
        with atomic_write(self.timing_cache) as handle:
            handle.write(data)
        log.info("timing cache: %s (%d bytes)", self.timing_cache, len(data))


def inspect_engine_layers(module: ModuleType, plan: bytes) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Per-layer list from ``IEngineInspector`` as ``(layers, None)``, or ``(None, reason)`` when the
    plan cannot be deserialized here (a tensorrt_rtx AOT engine on a machine without a GPU)."""
    trt_log = trt_logger(module)
    with trt_log.capture() as capture:
        try:
            engine = engine_from_bytes(module, module.__name__, plan)
        except Exception as exc:  # noqa: BLE001 - inspection is best effort
            return None, one_line(f"engine inspector unavailable: {exc}")
    if engine is None:
        return None, one_line(f"engine inspector unavailable (needs a GPU to load the plan): {capture.last_error()}")
    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(module.LayerInformationFormat.JSON))
    layers: list[dict[str, Any]] = []
    for item in info.get("Layers", []):
        if isinstance(item, str):
            layers.append({"name": item})
        else:
            entry = {"name": item.get("Name"), "type": item.get("LayerType")}
            if item.get("TacticName"):
                entry["tactic"] = item["TacticName"]
            layers.append(entry)
    return layers, None
