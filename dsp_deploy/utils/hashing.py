"""File hashing for provenance records."""
from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def zip_damage(path: str | os.PathLike[str]) -> str | None:
    """Why the zip archive at ``path`` (torch.save / TorchScript format) is damaged, or None if it
    is intact or not a zip. torch.load does not check the members' CRC32, so a flipped byte in a
    weight would otherwise load silently as a different weight."""
    import zipfile
    import zlib

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return None  # not a zip at all: the caller's loader says what it is
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error) as exc:
        return f"damaged archive ({type(exc).__name__}: {str(exc)[:120]})"
    return f"archive member '{bad}' fails its CRC check (corrupted file)" if bad else None
