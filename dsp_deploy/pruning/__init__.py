"""The seams every pruning method plugs into: importance criteria (`criteria`) and the one
monotone target search (`search`) used by DSP group pruning and the channel-pruning baselines."""
from __future__ import annotations

from dsp_deploy.pruning.criteria import CRITERIA, Criterion, get_criterion, register_criterion
from dsp_deploy.pruning.search import bisect_threshold

__all__ = ["CRITERIA", "Criterion", "bisect_threshold", "get_criterion", "register_criterion"]
