"""Write checkpoints in the DSP authors' released format (traced TorchScript `Compactblock`s)
for any depth and group count, so the importer and exporter are tested beyond the two files
in shared/. The layout mirrors shared/dsp-reference/README.md: per-group gather indices and
residual indices are plain tensors captured by tracing as constants.
"""
from __future__ import annotations

import torch
from torch import nn


class _Sampler(nn.Module):
    def __init__(self, indices: list[list[int]]) -> None:
        super().__init__()
        self.indices = [torch.tensor(i, dtype=torch.int64).view(1, -1, 1, 1) for i in indices]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.take_along_dim(x, i, 1) for i in self.indices)


class _Concat(nn.Module):
    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts, 1)


class _IAdd(nn.Module):
    def __init__(self, indices: list[list[int]]) -> None:
        super().__init__()
        self.indices = [torch.tensor(i, dtype=torch.int64) for i in indices]

    def forward(self, identity: torch.Tensor, *parts: torch.Tensor) -> torch.Tensor:
        out = identity
        for index, part in zip(self.indices, parts):
            out = out.index_add_(1, index, part)
        return out


def _branch(cin: int, cout: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    seq = nn.Sequential(*layers)
    with torch.no_grad():
        seq[1].weight.uniform_(0.5, 1.5)
        seq[1].bias.uniform_(-0.2, 0.2)
        seq[1].running_mean.uniform_(-0.2, 0.2)
        seq[1].running_var.uniform_(0.5, 1.5)
    return seq


class Compactblock(nn.Module):
    """A pruned basic block: per-group convs over gathered channels, index-added residual."""

    def __init__(self, in_ch: int, width: int, stride: int, groups: int, gen: torch.Generator) -> None:
        super().__init__()

        def pick(n: int, k: int) -> list[int]:
            return sorted(torch.randperm(n, generator=gen)[:k].tolist())

        sizes_a = [int(torch.randint(1, max(2, width // groups), (1,), generator=gen)) for _ in range(groups)]
        reads_a = [pick(in_ch, int(torch.randint(2, in_ch, (1,), generator=gen))) for _ in range(groups)]
        self.sampler_a = _Sampler(reads_a)
        self.layers_a = nn.ModuleList(_branch(len(r), n, stride, True) for r, n in zip(reads_a, sizes_a))
        self.concat_a = _Concat()
        total = sum(sizes_a)
        out_perm = torch.randperm(width, generator=gen).tolist()
        sizes_b = [max(1, width // (groups + 1))] * groups
        writes = [sorted(out_perm[sum(sizes_b[:g]):sum(sizes_b[:g + 1])]) for g in range(groups)]
        reads_b = [pick(total, int(torch.randint(1, total + 1, (1,), generator=gen))) for _ in range(groups)]
        self.sampler_b = _Sampler(reads_b)
        self.layers_b = nn.ModuleList(_branch(len(r), len(w), 1, False) for r, w in zip(reads_b, writes))
        self.residual = _IAdd(writes)
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        mid = self.concat_a(*(layer(part) for layer, part in zip(self.layers_a, self.sampler_a(x))))
        outs = [layer(part) for layer, part in zip(self.layers_b, self.sampler_b(mid))]
        return torch.relu_(self.residual(identity, *outs))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, groups: int, seed: int, num_classes: int = 10, width_scale: int = 1) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        widths = [16 * width_scale, 32 * width_scale, 64 * width_scale]
        self.conv_1_3x3 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(widths[0])
        n = (depth - 2) // 6
        cin = widths[0]
        for s, width in enumerate(widths, start=1):
            blocks = []
            for b in range(n):
                stride = 2 if (s > 1 and b == 0) else 1
                blocks.append(Compactblock(cin, width, stride, groups, gen))
                cin = width
            setattr(self, f"stage_{s}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu_(self.bn_1(self.conv_1_3x3(x)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def write_authors_checkpoint(path: str, depth: int, groups: int, seed: int = 0, width_scale: int = 1) -> str:
    """Trace a random authors-format DSP ResNet of ``depth`` with ``groups`` groups to ``path``."""
    model = CifarResNet(depth, groups, seed, width_scale=width_scale).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(2, 3, 32, 32), check_trace=False)
    traced.save(path)
    return path
