"""Reading the JSON documents the tool writes (result files, manifests, plans, profiles), with
the one-line errors every stage promises: the file, and what is wrong with it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dsp_deploy.errors import DSPDeployError


def read_json_object(path: str | os.PathLike[str], error: type[DSPDeployError], what: str,
                     *, format_name: str | None = None) -> dict[str, Any]:
    """The JSON object stored in ``path``. Raises ``error`` naming the file when it is missing,
    unreadable, not JSON, not an object, or (with ``format_name``) its "format" entry differs.
    ``what`` names the document in messages ("engine manifest", "bench result file")."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such file (expected a {what})") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: not a readable JSON {what}: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: not a {what} (the JSON is not an object)")
    if format_name is not None and data.get("format") != format_name:
        raise error(f"{path}: not a {what} (format is {data.get('format')!r}, expected {format_name!r})")
    return data
