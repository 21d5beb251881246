"""The execution layer: load a model file (ONNX, TensorRT engine, checkpoint) into a runner with
one lifecycle (``activate``/``infer``/``deactivate``), time runners interleaved, compare outputs.

Every command that runs or times a model (export planner, bench, compare, serving) goes through
here. Importing this package is cheap: runtimes are imported by the loaders that need them.
"""
from __future__ import annotations
