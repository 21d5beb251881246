"""Deployment targets: backend, threads, batch, precision and the machine's fingerprint, and the
channel alignment the target's kernels want.

This module sits low in the package (no bench/compare/cli imports, nothing heavy at import):
``dsp_deploy.bench.machine`` re-exports its CPU/GPU detection so result rows and targets agree.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata as metadata
import importlib.util
import json
import logging
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("ort-cpu", "ort-cuda", "trt", "torch-cuda")
MEASURABLE_BACKENDS: tuple[str, ...] = ("ort-cpu",)  # latency tables can be measured for these today
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
_TRT_MODULES = ("tensorrt", "tensorrt_rtx")  # same preference as dsp_deploy.engines.trt_module

# Channel multiple per CPU ISA level (fp32). MLAS (ONNX Runtime's CPU kernels) packs NCHWc blocks
# of one vector register of floats: 8 on AVX/AVX2 (256-bit), 16 on AVX-512. AMX tiles only compute
# bf16/int8; fp32 convolutions on an AMX machine run on its AVX-512 units, hence 16. 128-bit
# SSE/NEON registers hold 4 floats.
ISA_MULTIPLE: dict[str, int] = {"amx": 16, "avx512": 16, "avx2": 8, "avx": 8, "sse4.2": 4, "neon": 4}
# GPUs: fp16 tensor-core MMA tiles want channel counts in multiples of 8 (cuDNN / TensorRT
# guidance); fp32 (TF32 tensor cores, float4 vector loads) want multiples of 4.
GPU_MULTIPLE: dict[str, int] = {"fp16": 8, "fp32": 4}


# -- machine detection (moved here from bench/machine.py, which re-exports it) ---------------------
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
    for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"), ("asimd", "NEON")):
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
            name = buf.value.decode(errors="replace") if cuda.cuDeviceGetName(buf, 256, device) == 0 else f"cuda:{index}"
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


# -- targets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fingerprint:
    """What a latency measurement depends on about the machine."""

    cpu: str
    isa: str
    gpu: str | None = None
    compute_capability: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_fingerprint(backend: str = "ort-cpu") -> Fingerprint:
    """This machine's fingerprint; the GPU part only for GPU backends (a CPU target ignores it)."""
    gpu = cc = None
    if backend != "ort-cpu":
        devices = cuda_devices()
        if devices:
            gpu, cc = devices[0]
    return Fingerprint(cpu_model(), isa_level(cpu_flags()), gpu, cc)


@dataclass(frozen=True)
class Target:
    """Where a model will run: backend, intra-op threads, batch, precision and the machine.
    ``multiple`` overrides the detected channel alignment (None: from the fingerprint)."""

    backend: str = "ort-cpu"
    threads: int = 1
    batch: int = 1
    precision: str = "fp32"
    fingerprint: Fingerprint = field(default_factory=lambda: detect_fingerprint("ort-cpu"))
    multiple: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "threads": self.threads, "batch": self.batch, "precision": self.precision,
                "fingerprint": self.fingerprint.to_dict(), "channel_multiple": channel_multiple(self)}

    def cache_key(self, versions: dict[str, str | None] | None = None) -> str:
        """Hash of everything a latency table depends on: target settings, fingerprint and the
        versions of the libraries that run it (so an upgrade re-measures)."""
        versions = library_versions() if versions is None else versions
        wanted = {k: versions.get(k) for k in ("onnxruntime", "tensorrt", "torch")}
        payload = {"backend": self.backend, "threads": self.threads, "batch": self.batch,
                   "precision": self.precision, "fingerprint": self.fingerprint.to_dict(), "versions": wanted}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]

    def describe(self) -> str:
        fp = self.fingerprint
        where = f"{fp.gpu} (sm {fp.compute_capability})" if fp.gpu else f"{fp.cpu} ({fp.isa})"
        return (f"{self.backend} {self.precision}, {self.threads} thread(s), batch {self.batch} on {where}, "
                f"channel multiple {channel_multiple(self)}")


def make_target(backend: str = "ort-cpu", *, threads: int = 1, batch: int = 1, precision: str = "fp32",
                multiple: int | None = None, fingerprint: Fingerprint | None = None) -> Target:
    """A validated target (UsageError naming the bad value); the fingerprint is detected by default."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}' (choose from: {', '.join(PRECISIONS)})")
    for name, value in (("threads", threads), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"target {name} must be a positive integer, got {value!r}")
    if multiple is not None and (isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1):
        raise UsageError(f"--channel-multiple must be a positive integer, got {multiple!r}")
    return Target(backend, threads, batch, precision, fingerprint or detect_fingerprint(backend), multiple)


def channel_multiple(target: Target) -> int:
    """The channel count the target's kernels process without padding (see ISA_MULTIPLE /
    GPU_MULTIPLE); the target's explicit ``multiple`` wins."""
    if target.multiple is not None:
        return target.multiple
    if target.backend == "ort-cpu":
        return ISA_MULTIPLE.get(target.fingerprint.isa, 1)
    return GPU_MULTIPLE[target.precision]


def with_multiple(target: Target, multiple: int | None) -> Target:
    """``target`` with its channel alignment overridden (None keeps the detected one)."""
    return target if multiple is None else replace(target, multiple=multiple)
