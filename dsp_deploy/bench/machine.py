"""Moved to `dsp_deploy.utils.machine`; this name stays so older imports keep working."""
from dsp_deploy.utils.machine import *  # noqa: F403
