"""Moved to `dsp_deploy.runtime.torch_runner`; this name stays so older imports keep working."""
from dsp_deploy.runtime.torch_runner import *  # noqa: F403
