"""Helpers shared by the stages: option checks, seeding, structure fingerprints, clean-up."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsp_deploy.errors import UsageError

log = logging.getLogger(__name__)


def check_positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    """UsageError unless ``value`` is a positive (or non-negative) number (integer if asked)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        raise UsageError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} {kind}, got {value!r}")


def check_loop_settings(settings: Mapping[str, Any]) -> None:
    check_positive("epochs", settings["epochs"], integer=True)
    if settings.get("iterations") is not None:
        check_positive("iterations", settings["iterations"], integer=True)
    check_positive("learning rate", settings["lr"])
    check_positive("momentum", settings["momentum"], allow_zero=True)
    check_positive("weight decay", settings["weight_decay"], allow_zero=True)
    check_positive("warm-up epochs", settings.get("warmup_epochs", 0.0), allow_zero=True)


def check_fraction(name: str, value: float) -> None:
    """UsageError unless 0 < value < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise UsageError(f"{name} must be a fraction strictly between 0 and 1 (e.g. 0.6 for 60%), got {value}")


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def structure_fingerprint(structure: Any) -> str:
    """sha256 of the structure's layers (metadata excluded): equal on every rank or a bug."""
    import json

    layers = [layer.to_dict() for layer in structure.layers]
    return hashlib.sha256(json.dumps(layers, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def cleanup_on_failure(folder: Path, keep_if_exists: Path) -> Iterator[None]:
    """Remove ``folder`` if the block fails and ``folder`` did not exist before and no
    ``keep_if_exists`` file was written into it (nothing half-written is left behind)."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed and folder.exists() and not keep_if_exists.exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise


def resolve_checkpoint_arg(path: str) -> str:
    """A run folder stands for its ``checkpoint.pt``."""
    if os.path.isdir(path):
        return os.path.join(path, "checkpoint.pt")
    return path


@dataclass(kw_only=True)
class RunSettings:
    """Settings shared by the training loops (`train` and `finetune`): recipe, command-line
    overrides of the stage and data sections, seed, device, resume and progress behaviour."""

    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # stage settings from the command line
    data_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    checkpoint_every: int = 0
    progress: bool = True
    eval_each_epoch: bool = True
