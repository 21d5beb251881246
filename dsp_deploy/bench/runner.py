"""Moved to `dsp_deploy.runtime.runner`; this name stays so older imports keep working."""
from dsp_deploy.runtime.runner import *  # noqa: F403
