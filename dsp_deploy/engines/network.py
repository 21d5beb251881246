"""Moved to `dsp_deploy.runtime.trt_network`; this name stays so older imports keep working."""
from dsp_deploy.runtime.trt_network import *  # noqa: F403
