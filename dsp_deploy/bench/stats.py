"""Moved to `dsp_deploy.runtime.stats`; this name stays so older imports keep working."""
from dsp_deploy.runtime.stats import *  # noqa: F403
