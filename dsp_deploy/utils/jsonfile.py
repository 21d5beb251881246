"""Reading the JSON documents the tool writes (result files, manifests, plans, profiles), with
the one-line errors every stage promises: the file, and what is wrong with it. ``DocFormat`` is the
header (format name and version) every written document carries and every reader checks."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DocFormat:
    """One kind of JSON document the tool writes: ``{"format": "dsp-deploy/<kind>", "format_version": N}``.

    ``check`` also accepts the spellings of earlier releases (``old_names`` for "format",
    ``old_version_keys`` such as "schema_version" or "version" for the version), so old files keep
    loading, and refuses a newer ``format_version`` with one line naming the file and both versions."""

    kind: str
    version: int
    what: str  # the document in messages: "engine manifest", "bench result file"
    old_names: tuple[str, ...] = ()
    old_version_keys: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"dsp-deploy/{self.kind}"

    def header(self) -> dict[str, Any]:
        """The two keys every written document starts with."""
        return {"format": self.name, "format_version": self.version}

    def check(self, data: Any, error: type[DSPDeployError], where: str) -> int:
        """The document's format version; ``error`` ("<where>: ...") if ``data`` is no such
        document or was written by a newer dsp-deploy."""
        prefix = f"{where}: " if where else ""
        if not isinstance(data, Mapping):
            raise error(f"{prefix}not a {self.what} (the JSON is not an object)")
        name = data.get("format")
        if name != self.name and name not in self.old_names:
            raise error(f"{prefix}not a {self.what} (format is {name!r}, expected {self.name!r})")
        keys = [key for key in ("format_version", *self.old_version_keys) if key in data]
        version = data[keys[0]] if keys else None
        if type(version) is not int or version < 1:  # not isinstance: True must not pass as version 1
            raise error(f"{prefix}{self.what} has no valid format_version ({version!r})")
        if version > self.version:
            raise error(f"{prefix}{self.what} has format_version {version}, newer than the {self.version} "
                        "this dsp-deploy reads (upgrade dsp-deploy)")
        return version

    def read(self, path: str | os.PathLike[str], error: type[DSPDeployError]) -> dict[str, Any]:
        """The checked JSON object in ``path``."""
        data = read_json_object(path, error, self.what)
        self.check(data, error, os.fspath(path))
        return data


SUMMARY_VERSION = 1  # the --json summaries printed by info, train, prune, finetune and demo


def summary_document(kind: str, summary: Mapping[str, Any]) -> str:
    """A command's ``--json`` summary (printed, not read back by the tool) with the same header as
    every file: ``{"format": "dsp-deploy/<kind>", "format_version": 1, ...}``."""
    header = DocFormat(kind, SUMMARY_VERSION, kind).header()
    return json.dumps({**header, **summary}, indent=1, default=str)


def shipped_json(package: str) -> dict[str, Path]:
    """The JSON files shipped inside ``package`` (package data: export profiles, training recipes),
    by name without ``.json``. Found through importlib.resources, so a plain ``pip install .``
    (not editable) finds them wherever the command runs."""
    from importlib import resources

    items = resources.files(package).iterdir()
    return {item.name[:-5]: Path(str(item)) for item in items if item.name.endswith(".json")}
