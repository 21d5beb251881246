"""Channel-pruning baselines at matched FLOPs: L1-norm channel pruning expressed in the structure IR
(G=1, exported by our exporter) and Torch-Pruning magnitude pruning (optional extra, exported with
plain ``torch.onnx.export``). Importing this package does not import torch."""
from __future__ import annotations

from dsp_deploy.baselines.l1_channel import (
    DEFAULT_MIN_KEEP,
    DEFAULT_TOLERANCE,
    ChannelPruner,
    ChannelPruneResult,
    L1ChannelPruner,
    PrunableChannel,
    l1_channel_prune,
)

__all__ = ["DEFAULT_MIN_KEEP", "DEFAULT_TOLERANCE", "ChannelPruneResult", "ChannelPruner", "L1ChannelPruner",
           "PrunableChannel", "l1_channel_prune"]
