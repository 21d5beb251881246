"""DPPNet's dynamic pattern-pruned convolution (Lee, Shin & Woo, CIKM 2022), written from the
paper's description and the facts of the authors' code (lee-gwang/DPPNet, utils/rcp_utils.py):

* P static kernels ``W_p`` (P = 4) per 3x3 conv, each with a k x k binary pattern mask ``M_p``
  shared by all (output, input) kernels of the layer:
  ``M_p = step(sigmoid(mean_{o,i}(|W_p[o,i]| - t_p[o])) - 0.5)`` with a learnable threshold
  ``t`` of shape (P, O) (zeros at start) and a straight-through estimator whose backward is
  the authors' piecewise slope (2 - 4|x| for |x| <= 0.4, 0.4 up to 1, 0 beyond);
* an attention module: global average pool -> 1x1 conv (I -> int(I * 0.25) + 1, no bias) ->
  ReLU -> 1x1 conv (-> P * O, bias) -> softmax over P (temperature 0.5) per output channel;
* the dynamic kernel of sample n: ``K[n, o] = sum_p a[n, p, o] * W_p[o] * M_p``.

In the fine-tuning stage the masks are frozen (``freeze_patterns``): stored in the
``fixed_mask`` buffer, masked weights zeroed, thresholds no longer trained.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

NUM_PATTERNS = 4
ATTENTION_RATIO = 0.25
TEMPERATURE = 0.5


class BinaryStep(torch.autograd.Function):
    """x > 0 forward; the authors' piecewise-linear surrogate gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        a = x.abs()
        slope = torch.where(a <= 0.4, 2 - 4 * a, torch.where(a <= 1, torch.full_like(a, 0.4), torch.zeros_like(a)))
        return grad * slope


def hidden_width(in_channels: int, patterns: int = NUM_PATTERNS) -> int:
    """Width of the attention's hidden layer (the authors' rule: I * 0.25 + 1, P for RGB input)."""
    return patterns if in_channels == 3 else int(in_channels * ATTENTION_RATIO) + 1


class PatternAttention(nn.Module):
    """GAP -> 1x1 -> ReLU -> 1x1 -> softmax over the P patterns, per output channel: (N, P, O)."""

    def __init__(self, in_channels: int, out_channels: int, patterns: int = NUM_PATTERNS,
                 temperature: float = TEMPERATURE) -> None:
        super().__init__()
        self.patterns, self.out_channels, self.temperature = patterns, out_channels, temperature
        hidden = hidden_width(in_channels, patterns)
        self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, patterns * out_channels, 1, bias=True)
        for conv in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return F.softmax(z.view(x.shape[0], self.patterns, self.out_channels) / self.temperature, dim=1)


class DPPConv2d(nn.Module):
    """A k x k convolution with P pattern-masked static kernels mixed per sample by attention."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, patterns: int = NUM_PATTERNS, temperature: float = TEMPERATURE) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.patterns = kernel_size, stride, padding, patterns
        self.weight = nn.Parameter(torch.empty(patterns, out_channels, in_channels, kernel_size, kernel_size))
        for p in range(patterns):
            nn.init.kaiming_uniform_(self.weight.data[p])
        self.threshold = nn.Parameter(torch.zeros(patterns, out_channels))
        self.attention = PatternAttention(in_channels, out_channels, patterns, temperature)
        self.register_buffer("fixed_mask", torch.ones(patterns, kernel_size, kernel_size))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, patterns={self.patterns}, frozen={bool(self.frozen)}")

    def pattern_scores(self) -> torch.Tensor:
        """sigmoid(mean_{o,i}(|W_p| - t_p)) - 0.5 per pattern and tap: (P, k, k); > 0 means kept."""
        diff = self.weight.abs() - self.threshold[:, :, None, None, None]
        return torch.sigmoid(diff.mean(dim=(1, 2))) - 0.5

    def pattern_mask(self) -> torch.Tensor:
        """The binary masks (P, k, k): learned (with the STE) or, once frozen, the fixed ones."""
        if bool(self.frozen):
            return self.fixed_mask
        return BinaryStep.apply(self.pattern_scores())

    def dynamic_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample kernels (N, O, I, k, k) = sum_p attention[n, p, o] * W_p[o] * M_p."""
        attn = self.attention(x)
        masked = self.weight * self.pattern_mask()[:, None, None]
        return torch.einsum("npo,poikl->noikl", attn, masked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        kernel = self.dynamic_kernel(x).reshape(n * self.out_channels, c, self.kernel_size, self.kernel_size)
        y = F.conv2d(x.reshape(1, n * c, h, w), kernel, None, self.stride, self.padding, groups=n)
        return y.view(n, self.out_channels, y.shape[-2], y.shape[-1])

    @torch.no_grad()
    def freeze(self, mask: torch.Tensor | None = None) -> None:
        """Fix the masks (the learned ones, or ``mask`` (P, k, k)); zero masked weights; stop
        training the thresholds."""
        mask = (self.pattern_scores() > 0).float() if mask is None else mask.to(self.fixed_mask)
        self.fixed_mask.copy_(mask)
        self.frozen.fill_(True)
        self.weight.mul_(mask[:, None, None])
        self.threshold.requires_grad_(False)


def dpp_convs(model: nn.Module) -> Iterator[tuple[str, DPPConv2d]]:
    """(name, module) of every DPP conv of ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, DPPConv2d):
            yield name, module


def to_dppnet(model: nn.Module, patterns: int = NUM_PATTERNS, *, copy_weights: bool = False) -> nn.Module:
    """Replace every 3x3 conv inside the residual blocks (``layerN.M.convK``) by a DPPConv2d
    (independent Kaiming init per static kernel, as the authors do, or with ``copy_weights`` P
    copies of the dense kernel); stem, 1x1 and downsample convs stay plain."""
    for name, module in list(model.named_modules()):
        if not (name.startswith("layer") and ".conv" in name and isinstance(module, nn.Conv2d)):
            continue
        if module.kernel_size != (3, 3):
            continue
        dpp = DPPConv2d(module.in_channels, module.out_channels, 3, module.stride[0], module.padding[0], patterns)
        if copy_weights:
            with torch.no_grad():
                dpp.weight.copy_(module.weight.detach()[None].expand_as(dpp.weight))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, dpp)
    return model


def freeze_patterns(model: nn.Module) -> int:
    """Freeze every DPP conv's learned masks (start of fine-tuning); returns how many were frozen."""
    count = 0
    for _, conv in dpp_convs(model):
        if not bool(conv.frozen):
            conv.freeze()
        conv.threshold.requires_grad_(False)
        count += 1
    return count


def set_random_patterns(model: nn.Module, taps: int, per_pattern: int | None = None, seed: int = 0) -> None:
    """Freeze every DPP conv to random patterns whose union holds ``taps`` of the k*k taps (the
    centre always among them), each pattern keeping ``per_pattern`` of those (default taps - 1;
    the patterns together cover the union). For benchmarks with random weights."""
    gen = torch.Generator().manual_seed(seed)
    for _, conv in dpp_convs(model):
        k2 = conv.kernel_size**2
        centre = k2 // 2
        others = [t for t in torch.randperm(k2, generator=gen).tolist() if t != centre]
        union = [centre, *others[: taps - 1]]
        keep = max(1, min(taps, per_pattern if per_pattern is not None else taps - 1))
        mask = torch.zeros(conv.patterns, k2)
        for p in range(conv.patterns):
            order = torch.randperm(taps, generator=gen).tolist()
            chosen = [union[i] for i in order[:keep]]
            if p < taps:  # make sure the patterns together cover the whole union
                chosen[0] = union[p]
            mask[p, chosen] = 1.0
        if conv.patterns < taps:
            mask[-1, union] = 1.0
        conv.freeze(mask.view(conv.patterns, conv.kernel_size, conv.kernel_size))
