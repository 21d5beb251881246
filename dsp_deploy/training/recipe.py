"""Training recipes: JSON files with the settings of each stage (torch-free).

A recipe has the sections ``data``, ``pretrain`` (dense training), ``train`` (group learning),
``prune`` and ``finetune``, plus ``model``, for the channel-pruning methods ``pfs`` and
``scratch`` (Pruning from Scratch) and ``scp`` and ``scp_finetune`` (Soft Channel Pruning), and
``patterns`` (DPPNet's pattern learning). Values resolve in this order: command-line option,
then recipe file, then the built-in defaults below (the DSP paper's CIFAR-10 settings).
The recipes shipped with the package (``dsp_deploy/recipes/``) are found by name.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from dsp_deploy.errors import UsageError
from dsp_deploy.utils.jsonfile import shipped_json

RECIPE_PACKAGE = "dsp_deploy.recipes"

DEFAULTS: dict[str, Any] = {
    "name": "default",
    "description": "",
    "model": None,
    "data": {"batch_size": 128, "eval_batch_size": 256, "workers": 2, "augment": True},
    "pretrain": {"epochs": 164, "iterations": None, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                 "warmup_epochs": 0.0},
    "train": {
        "epochs": 120, "iterations": None, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "warmup_epochs": 0.0,
        "groups": 4, "tau": 1.0, "lambda": 2e-3, "group_lr": 1e-3, "group_betas": [0.9, 0.999], "lookahead": True,
    },
    "prune": {"flops_reduction": None, "flops_metric": None, "groups": None, "channel_multiple": None},
    "patterns": {"epochs": 90, "iterations": None, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                 "warmup_epochs": 0.0, "alpha": 1e-4},  # DPPNet pattern learning (authors' train.py defaults)
    "finetune": {"epochs": 400, "iterations": None, "lr": 0.015, "momentum": 0.9, "weight_decay": 1e-3,
                 "warmup_epochs": 0.0},
    # Pruning from Scratch: gate search on frozen random weights (Adam on the gates; the SGD
    # settings are unused), then the pruned net trained from scratch ("scratch").
    "pfs": {"epochs": 10, "iterations": None, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "warmup_epochs": 0.0,
            "gate_lr": 0.01, "gamma": 0.5, "width_multiplier": 1.25},
    "scratch": {"epochs": 164, "iterations": None, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                "warmup_epochs": 0.0},
    # Soft Channel Pruning: training from scratch with soft masks, then fine-tuning (lr 0.01).
    "scp": {"epochs": 160, "iterations": None, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "warmup_epochs": 0.0,
            "tau": 0.5, "delta": 0.05, "lambda": 2.0},
    "scp_finetune": {"epochs": 160, "iterations": None, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                     "warmup_epochs": 0.0},
}
_NULLABLE = {("model",), ("pretrain", "iterations"), ("train", "iterations"), ("finetune", "iterations"),
             ("prune", "flops_reduction"), ("prune", "flops_metric"), ("prune", "groups"),
             ("prune", "channel_multiple"), ("pfs", "iterations"), ("scratch", "iterations"), ("scp", "iterations"),
             ("scp_finetune", "iterations"), ("patterns", "iterations")}


def _check(where: str, key_path: tuple[str, ...], value: Any, default: Any) -> None:
    if value is None:
        if key_path in _NULLABLE:
            return
        raise UsageError(f"{where}: '{'.'.join(key_path)}' must not be null")
    if default is None or isinstance(default, str):
        if key_path[-1] in ("model", "flops_metric", "name", "description") and not isinstance(value, str):
            raise UsageError(f"{where}: '{'.'.join(key_path)}' must be a string")
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)
    else:
        ok = True
    if not ok:
        raise UsageError(f"{where}: '{'.'.join(key_path)}' has the wrong type ({type(value).__name__})")


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str, prefix: tuple[str, ...] = ()) -> None:
    for key, value in update.items():
        path = prefix + (key,)
        if key.startswith("_"):  # "_comment" and friends
            continue
        if key not in base:
            raise UsageError(f"{where}: unknown key '{'.'.join(path)}'")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise UsageError(f"{where}: '{'.'.join(path)}' must be an object")
            _merge(base[key], value, where, path)
        else:
            _check(where, path, value, DEFAULTS_FLAT.get(path))
            base[key] = value


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


DEFAULTS_FLAT = _flatten(DEFAULTS)


def list_recipes() -> list[str]:
    """Names of the recipes shipped with the package."""
    return sorted(shipped_json(RECIPE_PACKAGE))


def load_recipe(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The defaults overlaid with the recipe at ``path``, a file or the name of a shipped recipe
    (UsageError naming the file/key)."""
    recipe = copy.deepcopy(DEFAULTS)
    if path is None:
        return recipe
    where = f"recipe {os.fspath(path)}"
    if not os.path.exists(path):
        path = shipped_json(RECIPE_PACKAGE).get(os.fspath(path), path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise UsageError(f"{where}: file not found, nor a shipped recipe ({', '.join(list_recipes())})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: must be a JSON object")
    _merge(recipe, data, where)
    return recipe


def stage_settings(recipe: Mapping[str, Any], stage: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """One stage's settings, with ``overrides`` (command-line values; None = not given) on top."""
    settings = dict(recipe[stage])
    for key, value in overrides.items():
        if value is not None:
            settings[key] = value
    return settings
