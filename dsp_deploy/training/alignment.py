"""Hardware-aligned group sizes for DSP group pruning (``channel_multiple=N``, see
`dsp_deploy.training.pruning`): round each group's kept filter and input-channel counts to a
multiple of N, keeping the most important ones, without breaking the structure's validity."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dsp_deploy.structure import PRUNED, ModelStructure

if TYPE_CHECKING:
    from dsp_deploy.training.pruning import _LayerPlan


def top_aligned(cum: torch.Tensor, count: int, multiple: int) -> torch.Tensor:
    """Indices of the ``count`` entries with the largest ``cum`` after rounding ``count`` to the
    nearest multiple of ``multiple`` (at least one multiple, at most every entry)."""
    n = cum.numel()
    if n > multiple:
        count = _nearest(max(count, 1), multiple, n)
    return torch.argsort(cum, descending=True, stable=True)[:count]


def _nearest(count: int, multiple: int, limit: int) -> int:
    """``count`` rounded to the nearest multiple (at least one, at most ``limit``); 0 stays 0."""
    return 0 if count == 0 else min(limit, max(multiple, int(round(count / multiple)) * multiple))


def align_filters(structure: ModelStructure, producer: "_LayerPlan", consumer: "_LayerPlan", inputs: list[set[int]],
                   readers: list[int], multiple: int) -> ModelStructure:
    """Round each group of ``producer`` to a multiple of live filters: revive the dead filters of
    the group the consumer rates highest (read by the consumer group rating each highest), or
    prune the live ones it rates lowest (no longer read; never emptying a consumer group)."""
    layer = structure.layer(producer.name)
    filters = list(layer.filter_groups)

    def best(f: int) -> int:
        return max(readers, key=lambda h: float(consumer.channel_cum[h, f]))

    def score(f: int) -> float:
        return float(consumer.channel_cum[best(f), f])

    for g in range(layer.groups):
        live = [f for f, fg in enumerate(filters) if fg == g]
        members = torch.nonzero(producer.assignment == g).flatten().tolist()
        want = _nearest(len(live), multiple, len(members))
        if want > len(live):
            for f in sorted((f for f in members if filters[f] == PRUNED), key=score, reverse=True)[:want - len(live)]:
                filters[f] = g
                inputs[best(f)].add(f)
        elif want < len(live):
            drop = len(live) - want
            for f in sorted(live, key=score):
                if drop and all(inputs[h] - {f} for h in readers):
                    filters[f] = PRUNED
                    for h in readers:
                        inputs[h].discard(f)
                    drop -= 1
    if filters == list(layer.filter_groups):
        return structure
    return structure.with_layers({producer.name: layer.replace(filter_groups=filters, groups=layer.groups)})


def align_reads(cum: torch.Tensor, inputs: list[set[int]], h: int, readers: list[int], live: set[int],
                 multiple: int, fed_by_conv: bool) -> None:
    """Round group ``h``'s read count to the nearest multiple: add its most important unread live
    channels, or drop its least important reads (when its source is a conv, only reads another
    group shares, so no producer filter dies); rounds up when it cannot round down."""
    chans = inputs[h]
    want = _nearest(len(chans), multiple, len(live))
    if want < len(chans):
        shared = set().union(*(inputs[k] for k in readers if k != h))
        removable = sorted((c for c in chans if not fed_by_conv or c in shared), key=lambda c: float(cum[c]))
        if len(removable) >= len(chans) - want:
            chans.difference_update(removable[:len(chans) - want])
            return
        want = min(len(live), -(-len(chans) // multiple) * multiple)
    if want > len(chans):
        chans.update(sorted(live - chans, key=lambda c: -float(cum[c]))[:want - len(chans)])
