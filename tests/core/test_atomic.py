"""Atomic outputs: nothing left behind on failure, normal permissions on success."""
from __future__ import annotations

import os
import stat

import pytest

from dsp_deploy.utils.atomic import atomic_directory, atomic_path, atomic_write


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_success_replaces_target_with_default_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt", "w") as handle:
            handle.write("x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
        with atomic_directory(tmp_path / "report") as folder:
            (folder / "r.md").write_text("z")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").read_text() == "x" and mode(tmp_path / "a.txt") == 0o644
    assert mode(tmp_path / "b.bin") == 0o644
    assert (tmp_path / "report" / "r.md").read_text() == "z" and mode(tmp_path / "report") == 0o755


def test_failure_leaves_nothing(tmp_path):
    for context in (atomic_write(tmp_path / "a.txt", "w"), atomic_path(tmp_path / "b.bin"),
                    atomic_directory(tmp_path / "report")):
        with pytest.raises(RuntimeError):
            with context:
                raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
