"""Moved: the one TensorRT runner is `dsp_deploy.runtime.trt_runner.TrtRunner`; this name stays so
older imports keep working."""
from dsp_deploy.runtime.trt_runner import TrtRunner, manifest_input_specs  # noqa: F401
