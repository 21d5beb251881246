"""What every result row records about where it ran: CPU, cores, GPU, library versions.

Nothing here imports torch, onnxruntime or TensorRT: versions come from package metadata and
the GPU is queried through the CUDA driver library with ctypes, so a CPU-only machine answers fast.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.metadata as metadata
import importlib.util
import logging
import os
import platform
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Import names of the TensorRT flavours, preferred first.
_TRT_MODULES = ("tensorrt", "tensorrt_rtx")  # same preference as dsp_deploy.engines.trt_module


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    text = _cpuinfo()
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags /proc/cpuinfo lists (empty where there is none)."""
    for line in _cpuinfo().splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def isa_level(flags: frozenset[str] | set[str]) -> str:
    """The target ISA level of a CPU flag set: amx, avx512, avx2, avx, sse4.2, neon or "generic"."""
    if "avx512f" in flags and ("amx_tile" in flags or "amx-tile" in flags):
        return "amx"
    for flag, level in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4.2"),
                        ("asimd", "neon")):
        if flag in flags:
            return level
    return "generic"


def cpu_isa() -> str:
    """The widest x86 SIMD extension the CPU reports ("AVX-512", "AVX2", "AVX", "SSE4.2"), else the
    machine name; serving and benchmark reports print it since ONNX Runtime's kernels depend on it."""
    flags = cpu_flags()
    for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
                        ("asimd", "NEON")):
        if flag in flags:
            return label
    return platform.machine() or "unknown"


def _cuda_driver() -> Any:
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            return ctypes.CDLL(lib)
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def cuda_devices() -> tuple[tuple[str, str | None], ...]:
    """(name, compute capability "major.minor") of each CUDA GPU the driver sees; empty without one."""
    cuda = _cuda_driver()
    if cuda is None:
        return ()
    try:
        if cuda.cuInit(0) != 0:
            return ()
        count = ctypes.c_int(0)
        if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return ()
        found = []
        for index in range(count.value):
            device, buf = ctypes.c_int(0), ctypes.create_string_buffer(256)
            if cuda.cuDeviceGet(ctypes.byref(device), index) != 0:
                found.append((f"cuda:{index}", None))
                continue
            named = cuda.cuDeviceGetName(buf, 256, device) == 0
            name = buf.value.decode(errors="replace") if named else f"cuda:{index}"
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            ok = (cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device) == 0  # COMPUTE_CAPABILITY_MAJOR
                  and cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device) == 0)
            found.append((name, f"{major.value}.{minor.value}" if ok else None))
        return tuple(found)
    except (AttributeError, OSError) as exc:  # a broken driver install
        log.debug("CUDA driver query failed: %s", exc)
        return ()


def cuda_gpus() -> tuple[str, ...]:
    """Names of the CUDA GPUs the driver sees; empty without a driver or GPU."""
    return tuple(name for name, _ in cuda_devices())


def _dist_version(module: str) -> str | None:
    """Version of the distribution providing import name ``module``, without importing it.

    Prefixed with the distribution name when that differs (``onnxruntime-gpu 1.20.0``,
    ``tensorrt-rtx-cu13 1.7.1``), since the flavour matters as much as the number.
    """
    if importlib.util.find_spec(module) is None:
        return None
    for dist in metadata.packages_distributions().get(module, []):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        same = dist.lower().replace("-", "_") == module.lower()
        return version if same else f"{dist} {version}"
    return "unknown"


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """Versions of python, numpy, onnxruntime, torch, the TensorRT flavour and dsp-deploy."""
    from dsp_deploy import __version__

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "dsp_deploy": __version__,
        "numpy": _dist_version("numpy"),
        "onnxruntime": _dist_version("onnxruntime"),
        "torch": _dist_version("torch"),
        "tensorrt": None,
    }
    for module in _TRT_MODULES:
        version = _dist_version(module)
        if version is not None:
            versions["tensorrt"] = version if " " in version else f"{module} {version}"
            break
    return versions


def usable_cores() -> int:
    """Logical cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, object]:
    """Machine description stored in every result row."""
    gpus = cuda_gpus()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "gpu": gpus[0] if gpus else None,
        "gpu_count": len(gpus),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }
