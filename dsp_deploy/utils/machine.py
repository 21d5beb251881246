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

log = logging.getLogger(__name__)

# Import names of the TensorRT flavours, preferred first.
_TRT_MODULES = ("tensorrt", "tensorrt_rtx")  # same preference as dsp_deploy.engines.trt_module


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Logical cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cuda_gpus() -> tuple[str, ...]:
    """Names of the CUDA GPUs the driver sees; empty without a driver or GPU."""
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            cuda = ctypes.CDLL(lib)
            break
        except OSError:
            continue
    else:
        return ()
    try:
        if cuda.cuInit(0) != 0:
            return ()
        count = ctypes.c_int(0)
        if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return ()
        names = []
        for index in range(count.value):
            device = ctypes.c_int(0)
            buf = ctypes.create_string_buffer(256)
            if cuda.cuDeviceGet(ctypes.byref(device), index) == 0 and cuda.cuDeviceGetName(buf, 256, device) == 0:
                names.append(buf.value.decode(errors="replace"))
            else:
                names.append(f"cuda:{index}")
        return tuple(names)
    except (AttributeError, OSError) as exc:  # a broken driver install
        log.debug("CUDA driver query failed: %s", exc)
        return ()


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


def cpu_isa() -> str:
    """The widest x86 SIMD extension the CPU reports ("AVX-512", "AVX2", "AVX", "SSE4.2"), else the
    machine name; serving and benchmark reports print it since ONNX Runtime's kernels depend on it."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    flags: set[str] = set()
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in ("flags", "Features"):
            flags = set(value.split())
            break
    for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
                        ("asimd", "NEON")):
        if flag in flags:
            return label
    return platform.machine() or "unknown"
