"""Metrics as JSON lines, written by rank 0 only.

Lines are buffered and appended when the run saves a checkpoint (and at the end), so the file
always matches the last checkpoint: a run resumed from it does not repeat or lose lines, and a
run that fails before its first checkpoint leaves no file behind.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

FORMAT_NAME = "dsp-deploy/metrics"
FORMAT_VERSION = 1
HEADER = {"event": "header", "format": FORMAT_NAME, "format_version": FORMAT_VERSION}
"""The first line of every metrics file: what it is, as every JSON document of the project says."""


class MetricsLog:
    """Buffered JSONL writer; ``path`` None (or a non-main rank) makes it a no-op."""

    def __init__(self, path: str | os.PathLike[str] | None, *, enabled: bool = True, fresh: bool = True) -> None:
        self.path = Path(path) if path is not None and enabled else None
        self._mode = "w" if fresh else "a"  # a fresh run replaces an old file at its first flush
        self._pending: list[str] = []
        self.records: list[dict[str, Any]] = []  # everything logged by this process (for summaries)

    def log(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self.records.append(record)
        if self.path is not None:
            self._pending.append(json.dumps(record, default=_plain))

    def flush(self) -> None:
        """Append the buffered lines to the file (creating it and its folder if needed)."""
        if self.path is None or not self._pending:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = self._mode == "w" or not self.path.exists() or self.path.stat().st_size == 0
        lines = ([json.dumps(HEADER)] if new_file else []) + self._pending
        with open(self.path, self._mode, encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._pending.clear()
        self._mode = "a"

    def discard(self) -> None:
        """Drop lines logged since the last flush (the run is rolled back to its checkpoint)."""
        self._pending.clear()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
