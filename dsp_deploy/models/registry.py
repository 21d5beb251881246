"""Model registry: names -> torch-free configs; `create` builds the torch module lazily."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsp_deploy.errors import CheckpointError, ModelError
from dsp_deploy.models.topology import Topology, resnet_topology

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a ResNet and its topology."""

    name: str
    family: str  # "cifar" (32x32, 10 classes) or "imagenet" (224x224, 1000 classes)
    block: str
    layers: tuple[int, ...]
    conv: str = "plain"  # "plain", or "dpp": DPPNet convs in every 3x3 conv of the residual blocks

    @property
    def is_dppnet(self) -> bool:
        return self.conv == "dpp"

    @property
    def widths(self) -> tuple[int, ...]:
        return (16, 32, 64) if self.family == "cifar" else (64, 128, 256, 512)

    @property
    def default_num_classes(self) -> int:
        return 10 if self.family == "cifar" else 1000

    @property
    def default_input_size(self) -> tuple[int, int]:
        return (32, 32) if self.family == "cifar" else (224, 224)

    @property
    def default_flops_metric(self) -> str:
        """The FLOPs convention papers use for this family: DSP's block-body count on CIFAR,
        whole-model MACs on ImageNet."""
        return "dsp" if self.family == "cifar" else "total"


_CONFIGS: dict[str, ModelConfig] = {}
for _depth in (20, 32, 44, 56, 110):
    _CONFIGS[f"resnet{_depth}"] = ModelConfig(f"resnet{_depth}", "cifar", "basic", ((_depth - 2) // 6,) * 3)
for _name, _block, _layers in (
    ("resnet18", "basic", (2, 2, 2, 2)),
    ("resnet34", "basic", (3, 4, 6, 3)),
    ("resnet50", "bottleneck", (3, 4, 6, 3)),
    ("resnet101", "bottleneck", (3, 4, 23, 3)),
):
    _CONFIGS[_name] = ModelConfig(_name, "imagenet", _block, _layers)
for _base in ("resnet20", "resnet56", "resnet18", "resnet34"):  # DPPNet (Lee et al., CIKM 2022)
    _plain = _CONFIGS[_base]
    _CONFIGS[f"dppnet-{_base}"] = ModelConfig(f"dppnet-{_base}", _plain.family, _plain.block, _plain.layers, "dpp")


def list_models() -> list[str]:
    """Names accepted by `create` and `topology`."""
    return list(_CONFIGS)


def get_config(name: str) -> ModelConfig:
    """The config of model ``name``; ModelError naming the valid choices otherwise."""
    try:
        return _CONFIGS[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}' (choose from: {', '.join(_CONFIGS)})") from None


def topology(name: str, num_classes: int | None = None, input_size: tuple[int, int] | None = None,
             in_channels: int = 3) -> Topology:
    """Torch-free layout of model ``name``: convs, shapes, output sizes, residual streams, for
    ``in_channels``-channel images of ``input_size`` (FLOPs follow the real input size)."""
    config = get_config(name)
    cifar = config.family == "cifar"
    return resnet_topology(
        name,
        block=config.block,
        layers=config.layers,
        widths=config.widths,
        stem_width=config.widths[0],
        stem_kernel=3 if cifar else 7,
        stem_stride=1 if cifar else 2,
        stem_pool=not cifar,
        num_classes=num_classes or config.default_num_classes,
        input_size=tuple(input_size or config.default_input_size),  # type: ignore[arg-type]
        in_channels=in_channels,
    )


def create(name: str, num_classes: int | None = None, weights: str | None = None,
           in_channels: int = 3, width_multiplier: float = 1.0) -> "torch.nn.Module":
    """Build model ``name`` (random init) for ``in_channels``-channel images, optionally loading a
    state_dict file such as a torchvision ``.pth`` (loaded with ``weights_only=True``: no code is
    executed). ``width_multiplier`` widens every conv (Pruning from Scratch searches a 1.25x net)."""
    from dsp_deploy.models.resnet import ResNet

    config = get_config(name)
    widths = tuple(max(1, round(w * width_multiplier)) for w in config.widths)
    model = ResNet(config.block, config.layers, widths, num_classes or config.default_num_classes,
                   cifar_stem=config.family == "cifar", in_channels=in_channels)
    if config.is_dppnet:
        from dsp_deploy.models.dpp import to_dppnet

        to_dppnet(model)
    if weights is not None:
        load_state_dict_file(model, weights, name)
    return model


def load_state_dict_file(model: "torch.nn.Module", path: str, model_name: str) -> None:
    """Load a plain state_dict file into ``model``, with one-line errors for every mismatch."""
    import torch

    from dsp_deploy.utils.hashing import zip_damage

    damage = zip_damage(path) if os.path.isfile(path) else None
    if damage:
        raise CheckpointError(f"cannot read weights file {path}: {damage}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"weights file not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - corrupt/unsafe file: report, don't trace
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"cannot read weights file {path}: {type(exc).__name__}: {first}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelError(f"{path} is not a {model_name} state_dict ({detail})")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ModelError(
                f"{path} is not a {model_name} state_dict: '{key}' has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
