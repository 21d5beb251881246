"""Moved to `dsp_deploy.runtime.runner`; this name stays so older imports keep working."""
from dsp_deploy.runtime.runner import *  # noqa: F401,F403
