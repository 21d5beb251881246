"""`python -m dsp_deploy` runs the CLI."""
from dsp_deploy.cli.main import entry_point

entry_point()
