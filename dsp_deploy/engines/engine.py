"""Moved to `dsp_deploy.runtime.trt_build`; this name stays so older imports keep working."""
from dsp_deploy.runtime.trt_build import *  # noqa: F403
