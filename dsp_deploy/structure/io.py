"""structure.json files: atomic save, validated load."""
from __future__ import annotations

import os

from dsp_deploy.errors import StructureError
from dsp_deploy.structure.ir import ModelStructure
from dsp_deploy.utils.atomic import write_text_atomic


def save_structure(structure: ModelStructure, path: str | os.PathLike[str]) -> None:
    """Write ``structure`` as indented JSON, atomically."""
    write_text_atomic(path, structure.to_json(indent=1) + "\n")


def load_structure(path: str | os.PathLike[str]) -> ModelStructure:
    """Read and validate a structure.json (StructureError naming the file or the layer)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise StructureError(f"structure file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureError(f"cannot read structure file {path}: {exc}") from None
    try:
        return ModelStructure.from_json(text)
    except StructureError as exc:  # name the file as well as the layer
        error = StructureError(f"{os.fspath(path)}: {exc}")
        error.layer = exc.layer
        raise error from None
