"""Moved to `dsp_deploy.runtime.trt_manifest`; this name stays so older imports keep working."""
from dsp_deploy.runtime.trt_manifest import *  # noqa: F403
