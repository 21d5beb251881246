"""The dsp-deploy checkpoint: one file with model name, config, state_dict, structure and
provenance. Saved with torch.save, loaded with ``weights_only=True`` so loading never runs
pickled code; the structure travels as a JSON string and is validated on load.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsp_deploy.errors import CheckpointError, DSPDeployError
from dsp_deploy.structure import ModelStructure, dense_structure
from dsp_deploy.utils.atomic import atomic_path
from dsp_deploy.utils.hashing import zip_damage
from dsp_deploy.utils.jsonfile import DocFormat

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# The header of the torch.save payload (a dict, like the JSON documents' headers).
CHECKPOINT_FORMAT = DocFormat("checkpoint", 1, "dsp-deploy checkpoint")
FORMAT_NAME, FORMAT_VERSION = CHECKPOINT_FORMAT.name, CHECKPOINT_FORMAT.version


@dataclass
class Checkpoint:
    """In-memory form of a checkpoint file."""

    model: str
    state_dict: dict[str, "torch.Tensor"]
    structure: ModelStructure
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. training state for --resume

    @property
    def num_classes(self) -> int:
        return self.structure.num_classes


def provenance(**fields: Any) -> dict[str, Any]:
    """Standard provenance record: tool and library versions, time, command line, plus ``fields``."""
    import torch

    from dsp_deploy import __version__

    record = {
        "dsp_deploy_version": __version__,
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)),
    }
    record.update(fields)
    return record


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically (temp file + rename)."""
    import torch

    payload = {
        **CHECKPOINT_FORMAT.header(),
        "model": checkpoint.model,
        "config": dict(checkpoint.config, num_classes=checkpoint.structure.num_classes,
                       input_size=list(checkpoint.structure.input_size)),
        "state_dict": {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()},
        "structure": checkpoint.structure.to_json(),
        "metadata": dict(checkpoint.metadata),
        "extra": dict(checkpoint.extra),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (e.g. the DSP authors' released models)."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _describe_non_checkpoint(path: str) -> str | None:
    """A reason why ``path`` is not our checkpoint, for files torch.load would misread."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return f"is not a readable checkpoint: damaged archive ({str(exc)[:120]})"
    if is_torchscript(path):
        return "is a TorchScript model, not a dsp-deploy checkpoint (convert it with `dsp-deploy import-reference`)"
    damage = zip_damage(path)
    return f"is not a readable checkpoint: {damage}" if damage else None


def _load_failure(exc: Exception) -> str:
    """One line saying why torch.load refused a file."""
    text = str(exc)
    if "Unsupported global" in text or "Weights only load failed" in text:
        unsafe = (text.split("Unsupported global:")[-1].split(" was not")[0].strip()
                  if "Unsupported global" in text else "")
        return f"it contains pickled code objects ({unsafe or 'unsafe globals'}), refused for safety"
    if "zip" in text.lower() or "EOF" in text or "unpickl" in text.lower():
        return "corrupt or truncated file"
    return (text.strip().splitlines() or [type(exc).__name__])[0][:200]


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint; CheckpointError with one clear line on any problem."""
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    reason = _describe_non_checkpoint(path)
    if reason:
        raise CheckpointError(f"{path} {reason}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle error, unsafe global ...
        raise CheckpointError(f"{path} is not a readable checkpoint: {_load_failure(exc)}") from None
    CHECKPOINT_FORMAT.check(payload, CheckpointError, path)
    try:
        structure = ModelStructure.from_json(payload.get("structure"))
    except DSPDeployError as exc:
        raise CheckpointError(f"{path}: invalid structure: {exc}") from None
    if structure.model != payload.get("model"):
        raise CheckpointError(f"{path}: structure is for {structure.model} "
                              f"but the checkpoint says {payload.get('model')}")
    parts = {key: payload.get(key) for key in ("state_dict", "config", "metadata", "extra")}
    wrong = [key for key, value in parts.items() if not isinstance(value, Mapping) and (key == "state_dict" or value)]
    if wrong:
        raise CheckpointError(f"{path}: malformed checkpoint ('{wrong[0]}' is not a dictionary)")
    return Checkpoint(structure.model, dict(parts["state_dict"]), structure, dict(parts["config"] or {}),  # type: ignore[arg-type]
                      dict(parts["metadata"] or {}), dict(parts["extra"] or {}))  # type: ignore[arg-type]


def build_model(checkpoint: Checkpoint) -> "torch.nn.Module":
    """Instantiate the checkpoint's model, load its weights and apply its structure (eval mode)."""
    from dsp_deploy.models import create
    from dsp_deploy.structure.masks import apply_structure

    model = create(checkpoint.model, num_classes=checkpoint.num_classes,
                   in_channels=checkpoint.structure.in_channels)
    expected = model.state_dict()
    for key, value in checkpoint.state_dict.items():
        if key not in expected:
            raise CheckpointError(f"state_dict key '{key}' does not belong to {checkpoint.model}")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"state_dict '{key}' has shape {tuple(value.shape)}, "
                                  f"{checkpoint.model} expects {tuple(expected[key].shape)}")
    missing = [k for k in expected if k not in checkpoint.state_dict]
    if missing:
        raise CheckpointError(f"state_dict lacks {len(missing)} {checkpoint.model} entries, e.g. '{missing[0]}'")
    model.load_state_dict(checkpoint.state_dict)
    apply_structure(model, checkpoint.structure)
    return model.eval()


def load_model(path: str | os.PathLike[str]) -> "torch.nn.Module":
    """Load a checkpoint file as an eval-mode torch model with its structure applied as masks."""
    return build_model(load_checkpoint(path))


def dense_checkpoint(model_name: str, model: "torch.nn.Module", **metadata: Any) -> Checkpoint:
    """Wrap a dense model as a checkpoint with the unpruned structure."""
    from dsp_deploy.models import topology

    num_classes = model.fc.out_features  # type: ignore[union-attr]
    structure = dense_structure(topology(model_name, num_classes))
    return Checkpoint(model_name, model.state_dict(), structure, {}, provenance(**metadata))


def checkpoint_from_state_dict(path: str | os.PathLike[str], model_name: str) -> Checkpoint:
    """A plain state_dict file (a torchvision ``resnet50.pth``) as a dense checkpoint of ``model_name``.

    Our ResNets use torchvision's module names, so torchvision keys map one to one (a ``module.``
    prefix from DataParallel is dropped); loaded with ``weights_only=True``. A wrong architecture
    or shape is a one-line ModelError naming the key (see `models.registry.load_state_dict_file`)."""
    import torch

    from dsp_deploy.models import create, get_config

    get_config(model_name)
    num_classes = None
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        fc = state.get("fc.weight", state.get("module.fc.weight")) if isinstance(state, Mapping) else None
        num_classes = int(fc.shape[0]) if fc is not None and getattr(fc, "ndim", 0) == 2 else None
    except Exception:  # noqa: BLE001 - create() below reports the file's problem in one line
        pass
    model = create(model_name, num_classes, weights=os.fspath(path))
    return dense_checkpoint(model_name, model, source=os.fspath(path), source_kind="state_dict")


def load_checkpoint_or_weights(path: str | os.PathLike[str], model_name: str | None = None) -> Checkpoint:
    """A dsp-deploy checkpoint, or with ``model_name`` also a plain (torchvision-style) state_dict file."""
    if model_name is None:
        return load_checkpoint(path)
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        if "not a dsp-deploy checkpoint" not in str(exc):
            raise
        return checkpoint_from_state_dict(path, model_name)
    if checkpoint.model != model_name:
        raise CheckpointError(f"{os.fspath(path)} holds a {checkpoint.model} checkpoint, not {model_name} (--model)")
    return checkpoint
