"""Moved to `dsp_deploy.runtime.ort`; this name stays so older imports keep working."""
from dsp_deploy.runtime.ort import *  # noqa: F403
