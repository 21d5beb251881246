"""Moved to `dsp_deploy.runtime.trt_flavour`; this name stays so older imports keep working."""
from dsp_deploy.runtime.trt_flavour import *  # noqa: F403
