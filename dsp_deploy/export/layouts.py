"""Weight and index arithmetic of the conv lowerings (numpy only, no graph).

Notation for a conv with structure S: groups g with filters F_g (the filters whose
``filter_groups`` entry is g) and kept inputs I_g. The masked dense weight W[f, c] is zero
unless c is in I_g for f's group g. Every layout below reproduces y = W * x exactly:

- grouped:  x_g = x[I_g] padded to m channels; y_g = W[F_g][:, I_g] * x_g (zero-padded to n
  filters); one Conv with group=G over concat_g(x_g) gives concat_g(y_g). A single active
  group whose m reaches the input width reads x itself (unread channels as zero columns):
  padding by repeated channels would only add a Gather.
- union:    U = union of I_g; y = W[kept][:, U] * x[U]  (zeros where a group does not read);
            with in_pad=0 U is every input channel: no input Gather at all (the unread
            columns are zero weights), which keeps the conv's input in ONNX Runtime's NCHWc
            layout where the Gather + its two reorders cost more than the extra MACs.
- branches: the grouped layout without padding, one Conv per group.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dsp_deploy.structure import PRUNED, ConvStructure


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple if multiple > 1 else n


def pad_indices(chosen: Sequence[int], size: int, total: int) -> list[int]:
    """``chosen`` extended to ``size`` entries with other channels of ``0..total-1`` (those
    right after the chosen ones first, so contiguous runs stay contiguous); repeats the first
    channel when there are not enough distinct ones. Padded entries get zero weights."""
    out = list(chosen)
    taken = set(out)
    last = max(out) if out else -1
    spare = sorted((c for c in range(total) if c not in taken), key=lambda c: (c < last, c))
    for c in spare:
        if len(out) >= size:
            break
        out.append(c)
    while len(out) < size:
        out.append(out[0] if out else 0)
    return out


def active_groups(layer: ConvStructure) -> list[int]:
    """Groups that own at least one filter (the others compute nothing)."""
    return [g for g in range(layer.groups) if layer.group_filters(g)]


@dataclass(frozen=True)
class ConvLayout:
    """A lowered conv: input gather indices (None = all channels, in order), weight, bias,
    group count, and where each kept filter lands in the output (filter -> channel)."""

    in_index: list[int] | None
    weight: np.ndarray
    bias: np.ndarray
    group: int
    out_pos: dict[int, int]
    zero_pos: int | None  # an output channel known to be exactly zero (a padded filter slot)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def restore_index(self, out_channels: int) -> tuple[list[int], bool]:
        """Indices that map the lowered output back to the model's filter order; pruned filters
        read the zero channel. Returns (indices, needs_pad): needs_pad when no padded slot
        exists and a zero channel must be appended."""
        zero = self.zero_pos if self.zero_pos is not None else self.out_channels
        index = [self.out_pos.get(f, zero) for f in range(out_channels)]
        needs_pad = self.zero_pos is None and any(f not in self.out_pos for f in range(out_channels))
        return index, needs_pad


KERNEL_BLOCKS = 4  # MLAS's NCHWc conv kernels compute up to 4 filter blocks per pass over the input


def split_slots(sizes: Sequence[int], m: int, k: int, pad: int) -> int:
    """Filter slots per virtual group when unevenly sized groups are split (see grouped_layout):
    the multiple of ``pad`` minimising V * m * (round_up(n, 4 * pad) * k^2 + pad), V = sum_g
    ceil(|F_g| / n) the virtual group count. A group runs at full speed only with 4 filter
    blocks (ONNX Runtime's NCHWc kernels; ``bench/hw_speed.py --kernels`` on AVX2, 7x7, batch 32:
    8 filters a group cost 3.6-6x the time per MAC of a dense conv, 16 1.8x, 32 1.0-1.25x), so a
    smaller n is priced as 4 blocks; the ``pad`` term prices each gathered input channel (the
    Gather writes V * m)."""
    step = max(pad, 1)
    top = round_up(max(sizes), step)

    def cost(n: int) -> tuple[int, int]:
        v = sum(-(-s // n) for s in sizes)
        return v * m * (round_up(n, KERNEL_BLOCKS * step) * k * k + step), -n
    return min(range(step, top + 1, step), key=cost)


def grouped_layout(layer: ConvStructure, weight: np.ndarray, bias: np.ndarray, *, pad: int = 1,
                   split: bool = False) -> ConvLayout:
    """One Conv with group=G over the concatenated per-group inputs (each padded to m; a single
    group with m >= the input width reads the whole input, no Gather).

    ``split``: groups with many filters become several virtual groups of n filters that read the
    same inputs (n from split_slots), so unevenly sized groups do not pad every group to the
    largest: G groups of n_max filters cost G * n_max * m, V virtual groups V * n * m."""
    groups = active_groups(layer)
    k = weight.shape[2]
    m = round_up(max(len(layer.group_inputs[g]) for g in groups), pad)
    sizes = [len(layer.group_filters(g)) for g in groups]
    n = split_slots(sizes, m, k, pad) if split else round_up(max(sizes), pad)
    slots = [(g, chunk) for g in groups for chunk in _chunks(list(layer.group_filters(g)), n)]
    whole = len(slots) == 1 and m >= layer.in_channels  # one group padded to the whole input: read it as is
    m = layer.in_channels if whole else m
    w = np.zeros((len(slots) * n, m, k, k), np.float32)
    b = np.zeros(len(slots) * n, np.float32)
    index: list[int] = []
    out_pos: dict[int, int] = {}
    zero_pos = None
    for slot, (g, filters) in enumerate(slots):
        chans = list(layer.group_inputs[g])
        index += list(range(m)) if whole else pad_indices(chans, m, layer.in_channels)
        rows = slot * n + np.arange(len(filters))
        w[np.ix_(rows, chans if whole else range(len(chans)))] = weight[np.ix_(filters, chans)]
        b[rows] = bias[filters]
        out_pos.update({f: int(r) for f, r in zip(filters, rows)})
        if len(filters) < n and zero_pos is None:
            zero_pos = slot * n + len(filters)
    identity = index == list(range(layer.in_channels))
    return ConvLayout(None if identity else index, w, b, len(slots), out_pos, zero_pos)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def union_layout(layer: ConvStructure, weight: np.ndarray, bias: np.ndarray, *, pad: int = 1,
                 in_pad: int = 1, aligned: bool = False) -> ConvLayout:
    """A plain Conv over the union of the read channels (``in_pad`` = 0: over all input
    channels, no Gather). ``aligned`` keeps every filter in the model's order (pruned ones as
    zero rows) so no restore gather is needed; otherwise pruned filters are dropped and the
    rows are padded to a multiple of ``pad``."""
    used = list(layer.read_channels)
    size = layer.in_channels if in_pad == 0 else round_up(len(used), in_pad)
    cols = None if size >= layer.in_channels else sorted(pad_indices(used, size, layer.in_channels))
    col_of = {c: j for j, c in enumerate(cols if cols is not None else range(layer.in_channels))}
    rows = list(range(layer.out_channels)) if aligned else list(layer.kept_filters)
    total = len(rows) if aligned else round_up(max(len(rows), 1), pad)
    k = weight.shape[2]
    w = np.zeros((total, len(col_of), k, k), np.float32)
    b = np.zeros(total, np.float32)
    out_pos: dict[int, int] = {}
    for r, f in enumerate(rows):
        g = layer.filter_groups[f]
        if g == PRUNED:
            continue
        chans = list(layer.group_inputs[g])
        w[r, [col_of[c] for c in chans]] = weight[f, chans]
        b[r] = bias[f]
        out_pos[f] = r
    zero_pos = next((r for r in range(total) if r >= len(rows) or layer.filter_groups[rows[r]] == PRUNED), None)
    return ConvLayout(cols, w, b, 1, out_pos, zero_pos)


def branch_layouts(layer: ConvStructure, weight: np.ndarray, bias: np.ndarray) -> list[ConvLayout]:
    """One plain Conv per active group (its own inputs and filters)."""
    out = []
    offset = 0
    for g in active_groups(layer):
        chans, filters = list(layer.group_inputs[g]), list(layer.group_filters(g))
        index = None if chans == list(range(layer.in_channels)) else chans
        out.append(ConvLayout(index, np.ascontiguousarray(weight[np.ix_(filters, chans)]), bias[filters].copy(), 1,
                              {f: offset + j for j, f in enumerate(filters)}, None))
        offset += len(filters)
    return out
