"""Hardware targets and the latency model measured on them (torch-free at import)."""
from __future__ import annotations

from dsp_deploy.hardware.target import (
    BACKENDS,
    Fingerprint,
    Target,
    channel_multiple,
    detect_fingerprint,
    isa_level,
    make_target,
)

__all__ = ["BACKENDS", "Fingerprint", "Target", "channel_multiple", "detect_fingerprint", "isa_level", "make_target"]
