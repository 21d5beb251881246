"""Refuse torch modules the exporter cannot lower, naming the layer.

The ONNX graph is built from the model's topology and weights, not by tracing, so a module
whose layers differ from the registry's ResNet (another activation, a dilated or grouped
conv, an extra layer) would otherwise be exported wrongly. Every module is compared with a
freshly built reference of the same model: same names, same types, same conv geometry.
"""
from __future__ import annotations

from typing import Any

from dsp_deploy.errors import UnsupportedLayerError

_CONV_ATTRS = ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode")


def check_module(module: Any, model_name: str) -> None:
    """UnsupportedLayerError (naming the layer) if ``module`` is not a plain ``model_name``."""
    from torch import nn

    from dsp_deploy.models import create

    fc = getattr(module, "fc", None)
    stem = getattr(module, "conv1", None)
    reference = create(model_name, num_classes=fc.out_features if isinstance(fc, nn.Linear) else None,
                       in_channels=stem.in_channels if isinstance(stem, nn.Conv2d) else 3)
    ours = dict(module.named_modules())
    theirs = dict(reference.named_modules())
    for name, sub in ours.items():
        if name not in theirs:
            raise UnsupportedLayerError(f"{type(sub).__name__} is not part of {model_name}; cannot lower it",
                                        layer=name or "<root>")
        expected = theirs[name]
        if type(sub) is not type(expected):
            raise UnsupportedLayerError(f"{type(sub).__name__} where {model_name} has {type(expected).__name__}; "
                                        "the exporter cannot lower it", layer=name or "<root>")
        if isinstance(sub, nn.Conv2d):
            for attr in _CONV_ATTRS:
                if getattr(sub, attr) != getattr(expected, attr):
                    raise UnsupportedLayerError(f"Conv2d with {attr}={getattr(sub, attr)} (expected "
                                                f"{getattr(expected, attr)}) cannot be lowered", layer=name)
            if (sub.bias is None) != (expected.bias is None):
                raise UnsupportedLayerError("Conv2d bias presence differs from the model", layer=name)
    for name in theirs:
        if name not in ours:
            raise UnsupportedLayerError(f"missing from the module (expected {type(theirs[name]).__name__})", layer=name)
