"""DPPNet (dynamic pattern-based pruning): FLOPs accounting, training stages and export glue.

The torch module lives in :mod:`dsp_deploy.models.dpp`; the ONNX lowering in
:mod:`dsp_deploy.export.passes.lower_dpp`.
"""
from __future__ import annotations
