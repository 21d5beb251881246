"""Command-line interface: a thin layer over the library API, one module per subcommand."""
from __future__ import annotations

from collections.abc import Mapping

from dsp_deploy.errors import OptionError


def as_flag(exc: OptionError, spelled: Mapping[str, str] | None = None) -> OptionError:
    """``exc`` (naming an options field) re-spelled for the command line: ``flops_reduction`` ->
    ``--flops-reduction``; ``spelled`` gives the spelling of options that are not one flag."""
    return exc.named((spelled or {}).get(exc.option) or "--" + exc.option.replace("_", "-"))
