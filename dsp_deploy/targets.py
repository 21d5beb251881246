"""Deployment targets: backend, threads, batch, precision and the machine's fingerprint, and the
channel alignment the target's kernels want.

This module sits low in the package (no bench/compare/cli imports, nothing heavy at import):
CPU/GPU detection comes from ``dsp_deploy.utils.machine``, so result rows and targets agree.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.utils.machine import cpu_flags, cpu_model, cuda_devices, isa_level, library_versions

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("ort-cpu", "ort-cuda", "trt", "torch-cuda")
MEASURABLE_BACKENDS: tuple[str, ...] = ("ort-cpu",)  # latency tables can be measured for these today
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")

# Channel multiple per CPU ISA level (fp32). MLAS (ONNX Runtime's CPU kernels) packs NCHWc blocks
# of one vector register of floats: 8 on AVX/AVX2 (256-bit), 16 on AVX-512. AMX tiles only compute
# bf16/int8; fp32 convolutions on an AMX machine run on its AVX-512 units, hence 16. 128-bit
# SSE/NEON registers hold 4 floats.
ISA_MULTIPLE: dict[str, int] = {"amx": 16, "avx512": 16, "avx2": 8, "avx": 8, "sse4.2": 4, "neon": 4}
# GPUs: fp16 tensor-core MMA tiles want channel counts in multiples of 8 (cuDNN / TensorRT
# guidance); fp32 (TF32 tensor cores, float4 vector loads) want multiples of 4.
GPU_MULTIPLE: dict[str, int] = {"fp16": 8, "fp32": 4}


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
