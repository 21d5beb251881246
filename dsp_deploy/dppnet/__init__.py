"""DPPNet (dynamic pattern-based pruning): FLOPs accounting and training stages (its compare row
lives in :mod:`dsp_deploy.compare.dppnet`, above this package).

The torch module lives in :mod:`dsp_deploy.models.dpp`; the ONNX lowering in
:mod:`dsp_deploy.export.passes.lower_dpp`.
"""
from __future__ import annotations
