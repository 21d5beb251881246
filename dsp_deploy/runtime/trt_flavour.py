"""Which TensorRT is installed: `tensorrt` (standard, needs a GPU to build) or `tensorrt_rtx`
(TensorRT for RTX: ahead-of-time builds work on a CPU-only machine).

Both are imported lazily, here only, so `import dsp_deploy.engines` stays cheap. TensorRT's own
log messages go through one process-wide logger per flavour that forwards them to `logging` at
DEBUG level and keeps the errors of the current operation, so failures can be reported as one
line naming the node or layer instead of a stream of `[TRT] [E]` lines on stderr.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dsp_deploy.errors import EngineBuildError, UsageError

log = logging.getLogger(__name__)

FLAVOURS: tuple[str, ...] = ("tensorrt", "tensorrt_rtx")
"""Module names, in order of preference for ``flavour=None`` ("auto")."""

_MODULES: dict[str, ModuleType] = {}
_LOGGERS: dict[str, Any] = {}

# TensorRT DataType names -> numpy-style names used in manifests and summaries.
_DTYPE_NAMES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "BOOL": "bool",
    "FP8": "float8",
    "INT4": "int4",
    "FP4": "float4",
}


def dtype_name(dtype: Any) -> str:
    """``trt.DataType.HALF`` -> ``"float16"`` (works for both flavours)."""
    name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
    return _DTYPE_NAMES.get(name, name.lower())


def _import(name: str) -> ModuleType:
    if name not in _MODULES:
        _MODULES[name] = importlib.import_module(name)
    return _MODULES[name]


def trt_module(flavour: str | None = None) -> tuple[ModuleType, str]:
    """Import and return ``(module, flavour)``: ``tensorrt`` if importable, else ``tensorrt_rtx``.

    ``flavour`` forces one of :data:`FLAVOURS` (``None`` or ``"auto"`` picks). Raises
    ``EngineBuildError`` when nothing usable is installed, ``UsageError`` for an unknown name.
    """
    if flavour not in (None, "auto") and flavour not in FLAVOURS:
        raise UsageError(f"unknown TensorRT flavour {flavour!r}; choose auto, {', '.join(FLAVOURS)}")
    candidates = FLAVOURS if flavour in (None, "auto") else (flavour,)
    problems = []
    for name in candidates:
        try:
            return _import(name), name
        except ImportError as exc:  # also covers a wheel whose shared libraries fail to load
            problems.append(f"{name}: {exc}")
            log.debug("cannot import %s: %s", name, exc)
        except OSError as exc:
            problems.append(f"{name}: {exc}")
            log.debug("cannot load %s: %s", name, exc)
    hint = "pip install tensorrt-rtx-cu13 (CPU-only builds) or tensorrt (needs a GPU)"
    raise EngineBuildError(f"no TensorRT flavour is usable ({'; '.join(problems)}); {hint}")


def flavour_version(module: ModuleType) -> str:
    """The module's version string (e.g. ``1.7.1.116`` for tensorrt_rtx)."""
    return str(getattr(module, "__version__", "unknown"))


def one_line(text: str, limit: int = 400) -> str:
    """Collapse whitespace/newlines so a TensorRT message fits the CLI's one-line error."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_NAMED = re.compile(r"(?:operation|layer|node|Layer|Node)[: ]+'([^']+)'")


def name_in_message(message: str) -> str | None:
    """The layer/node a TensorRT error message names (``operation 'fc'`` -> ``fc``), if any."""
    match = _NAMED.search(message)
    return match.group(1) if match else None


@dataclass
class LogCapture:
    """Messages TensorRT logged during one operation (see :meth:`TrtLog.capture`)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parsed_nodes: list[tuple[str, str]] = field(default_factory=list)  # (node name, op type)

    def last_error(self) -> str | None:
        """The most recent error message, one line."""
        return one_line(self.errors[-1]) if self.errors else None


_PARSING_NODE = re.compile(r"^Parsing node: (.*) \[([^\]]+)\]$")


class TrtLog:
    """Process-wide adapter between a flavour's ``ILogger`` and :mod:`logging`.

    TensorRT keeps the first logger it sees as its global one, so each flavour gets exactly one
    instance (:func:`trt_logger`); :meth:`capture` scopes the collected messages to one task.
    """

    def __init__(self, module: ModuleType) -> None:
        severity = module.ILogger.Severity
        self._error_levels = {severity.INTERNAL_ERROR, severity.ERROR}
        self._warning = severity.WARNING
        self._capture: LogCapture | None = None
        owner = self

        class _Logger(module.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                module.ILogger.__init__(self)

            def log(self, level: Any, msg: str) -> None:
                owner._record(level, msg)

        self.logger = _Logger()

    def _record(self, level: Any, msg: str) -> None:
        capture = self._capture
        if level in self._error_levels:
            log.debug("TensorRT error: %s", msg)
            if capture is not None:
                capture.errors.append(msg)
        elif level == self._warning:
            log.debug("TensorRT warning: %s", msg)
            if capture is not None:
                capture.warnings.append(msg)
        elif capture is not None and msg.startswith("Parsing node: "):
            match = _PARSING_NODE.match(msg.strip())
            if match:
                capture.parsed_nodes.append((match.group(1), match.group(2)))

    @contextlib.contextmanager
    def capture(self) -> Iterator[LogCapture]:
        """Collect TensorRT errors/warnings logged inside the block."""
        previous, self._capture = self._capture, LogCapture()
        try:
            yield self._capture
        finally:
            self._capture = previous


def trt_logger(module: ModuleType) -> TrtLog:
    """The single :class:`TrtLog` for ``module`` (created on first use)."""
    key = module.__name__
    if key not in _LOGGERS:
        _LOGGERS[key] = TrtLog(module)
    return _LOGGERS[key]
