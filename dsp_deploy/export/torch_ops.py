"""The small torch modules a lowered graph is made of, and the module that wires them.

Imported only by the torch export (it imports torch at the top); see ``torch_module.py``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ChannelGather(nn.Module):
    """``x[:, index]`` (ONNX Gather on axis 1): a channel reorder, subset or repeat."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("index", torch.zeros(channels, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 1, self.index)

    def extra_repr(self) -> str:
        return f"channels={self.index.numel()}"


class ChannelSlice(nn.Module):
    """``x[:, start:end]`` (a view; ONNX Slice on axis 1)."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.end]

    def extra_repr(self) -> str:
        return f"{self.start}:{self.end}"


class ZeroChannels(nn.Module):
    """Append ``count`` zero channels (ONNX Pad on axis 1)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.count))

    def extra_repr(self) -> str:
        return f"count={self.count}"


class Add(nn.Module):
    """The residual merge."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class ChannelCat(nn.Module):
    """Concatenate branch outputs along the channels."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, 1)


class LoweredModule(nn.Module):
    """Runs ``ops`` in order; op i reads the values of slots ``wiring[i]`` (slot 0 = the input,
    slot i+1 = op i's output) and each value is dropped after its last reader, as eager memory
    would be. ``input_shape`` is the per-sample shape (C, H, W)."""

    def __init__(self, ops: Sequence[nn.Module], wiring: Sequence[Sequence[int]], output: int,
                 input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.wiring = [tuple(w) for w in wiring]
        self.output = output
        self.input_shape = tuple(input_shape)
        last: dict[int, int] = {}
        for i, wires in enumerate(self.wiring):
            for slot in wires:
                last[slot] = i
        self.drop = [tuple(s for s in set(wires) if last[s] == i and s != output)
                     for i, wires in enumerate(self.wiring)]
        self.spec: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: list[torch.Tensor | None] = [x] + [None] * len(self.wiring)
        for i, op in enumerate(self.ops):
            values[i + 1] = op(*[values[s] for s in self.wiring[i]])
            for slot in self.drop[i]:
                values[slot] = None
        return values[self.output]
