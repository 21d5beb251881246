"""The latency model measured on a target (`dsp_deploy.targets`), re-exported here; torch-free at import."""

from __future__ import annotations

from dsp_deploy.targets import (
    BACKENDS,
    Fingerprint,
    Target,
    channel_multiple,
    detect_fingerprint,
    isa_level,
    make_target,
)

__all__ = ["BACKENDS", "Fingerprint", "Target", "channel_multiple", "detect_fingerprint", "isa_level", "make_target"]
