"""Model zoo: CIFAR ResNet-20/32/44/56/110 and ImageNet ResNet-18/34/50/101 (torchvision keys)."""
from __future__ import annotations

from dsp_deploy.models.registry import ModelConfig, create, get_config, list_models, topology
from dsp_deploy.models.topology import ConvSpec, Stream, Topology

__all__ = ["ConvSpec", "ModelConfig", "Stream", "Topology", "create", "get_config", "list_models", "topology"]
