"""Training stages of DSP: group learning (`learn`), group channel pruning (`prune`,
`pruning`, `clustering`), fine-tuning (`finetune`) and the end-to-end `demo`.

Importing this package is cheap; the stage modules import torch.
"""
from __future__ import annotations
