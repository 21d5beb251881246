"""Moved to `dsp_deploy.runtime.trt_runner`; this name stays so older imports keep working."""
from dsp_deploy.runtime.trt_runner import *  # noqa: F403
