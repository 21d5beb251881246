"""Polygraphy, imported the one way the tool uses it: quiet, and with its TensorRT-for-RTX switch
set in code (``polygraphy.config.USE_TENSORRT_RTX``) before its TensorRT backend is imported.

Polygraphy binds the TensorRT module when ``polygraphy.backend.trt`` is first imported, so one
process uses one flavour through it; asking for the other afterwards is an ``EngineBuildError``.
Its TensorRT logger is replaced by ours (``trt_flavour.trt_logger``) so build and parse errors
are still reported as one line naming the layer or node.
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from dsp_deploy.errors import EngineBuildError
from dsp_deploy.runtime.trt_flavour import trt_logger

HINT = "pip install polygraphy==0.53.* (the TensorRT path builds and compares through it)"


def _import_polygraphy() -> Any:
    try:
        import polygraphy.config as config
        from polygraphy.logger import G_LOGGER
    except ImportError as exc:
        raise EngineBuildError(f"Polygraphy is not installed ({exc}); {HINT}") from None
    G_LOGGER.module_severity = G_LOGGER.CRITICAL + 1  # silent: its lines would interleave with ours; we raise
    G_LOGGER.colors = False  # (else it prints a hint about the optional 'colored' module)
    return config


@contextlib.contextmanager
def polygraphy_quiet() -> Iterator[None]:
    """Polygraphy's own log silenced inside the block (the tool reports results itself)."""
    _import_polygraphy()
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.CRITICAL + 1), warnings.catch_warnings():  # above CRITICAL: silent; we raise
        warnings.simplefilter("ignore", DeprecationWarning)  # e.g. RTX's no-op timing-cache calls
        yield


def polygraphy_trt(module: ModuleType, flavour: str) -> ModuleType:
    """``polygraphy.backend.trt`` bound to ``flavour`` (``tensorrt`` or ``tensorrt_rtx``), with
    our logger for ``module`` installed as its TensorRT logger."""
    config = _import_polygraphy()
    rtx = flavour == "tensorrt_rtx"
    if "polygraphy.backend.trt" in sys.modules and bool(config.USE_TENSORRT_RTX) != rtx:
        bound = "tensorrt_rtx" if config.USE_TENSORRT_RTX else "tensorrt"
        raise EngineBuildError(f"Polygraphy is already bound to {bound} in this process; {flavour} needs a new one")
    config.USE_TENSORRT_RTX = rtx  # in code, before the backend import (not via the environment)
    import polygraphy.backend.trt as ptrt
    import polygraphy.backend.trt.util as ptrt_util

    ptrt_util.TRT_LOGGER = trt_logger(module).logger
    return ptrt


def engine_from_bytes(module: ModuleType, flavour: str, plan: bytes) -> Any:
    """Deserialize ``plan`` with Polygraphy's ``EngineFromBytes``; None when TensorRT cannot
    (its error is in our logger's capture)."""
    ptrt = polygraphy_trt(module, flavour)
    from polygraphy.exception import PolygraphyException

    with polygraphy_quiet():
        try:
            return ptrt.EngineFromBytes(plan)()
        except PolygraphyException:
            return None
