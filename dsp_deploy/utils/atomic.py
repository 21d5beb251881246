"""Atomic outputs: write to a temporary sibling, then rename, so no half-written file is left."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _default_mode(directory: bool = False) -> int:
    """Permissions a plainly created file or folder would get (mkstemp/mkdtemp make 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Yield a file object whose content replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for writers that need a file name (torch.save, onnx.save, ...)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.chmod(tmp_name, _default_mode())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` (a report folder) on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp_dir
        os.chmod(tmp_dir, _default_mode(directory=True))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp_dir, target)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary siblings (``.NAME.*.tmp``) that a writer of ``path`` killed mid-write
    (SIGKILL, power loss) left behind. Only for a file this process alone writes, such as the
    checkpoint of a run being resumed: another live writer's temporary file would go too."""
    target = Path(path)
    stale = list(target.parent.glob(f".{target.name}.*.tmp")) if target.parent.is_dir() else []
    for tmp in stale:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return stale
