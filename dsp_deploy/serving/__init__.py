"""Serving: Triton model repositories (``triton-repo``) and a real Triton server (``serve``).

Heavy imports (onnx, tritonclient, pytriton) happen inside the functions of the submodules.
"""
from __future__ import annotations
