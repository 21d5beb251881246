"""What every result row records about where it ran: CPU, cores, GPU, library versions.

Nothing here imports torch, onnxruntime or TensorRT: versions come from package metadata and
the GPU is queried through the CUDA driver library with ctypes, so a CPU-only machine answers fast.
"""
from __future__ import annotations

import functools
import os
import platform

from dsp_deploy.targets import _dist_version, cpu_isa, cpu_model, cuda_gpus, library_versions

__all__ = ["_dist_version", "cpu_isa", "cpu_model", "cuda_gpus", "library_versions", "machine_info", "usable_cores"]


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
