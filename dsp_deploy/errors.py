"""One exception hierarchy for every stage, so the CLI can turn any of them into one line.

Messages name the layer (or node, file, backend) they concern: ``layer 'layer1.0.conv1': ...``.
"""
from __future__ import annotations


class DSPDeployError(Exception):
    """Base of every error the tool raises on purpose (bad input, failed build, ...)."""

    exit_code = 1

    def __init__(self, message: str, *, layer: str | None = None) -> None:
        self.layer = layer
        self.detail = message
        super().__init__(f"layer '{layer}': {message}" if layer else message)


class UsageError(DSPDeployError):
    """A command-line argument or option value is invalid."""

    exit_code = 2


class OptionError(UsageError):
    """An option of a library call is invalid. The message names the option as the library spells
    it (the options dataclass field, e.g. ``flops_reduction``); ``named`` re-spells it, e.g. as
    the command-line flag. ``option`` is the stable key, ``shown`` how the message spells it."""

    def __init__(self, template: str, option: str, *, shown: str | None = None) -> None:
        self.template = template  # the message with "{option}" where the option's name goes
        self.option = option
        self.shown = shown or option
        super().__init__(template.replace("{option}", self.shown))

    def named(self, name: str) -> OptionError:
        """The same error with the option called ``name`` (e.g. ``--flops-reduction``)."""
        return OptionError(self.template, self.option, shown=name)


class ModelError(DSPDeployError):
    """Unknown model name, or a model/weights/architecture mismatch."""


class StructureError(DSPDeployError):
    """The structure IR is malformed or inconsistent with the model it describes."""


class CheckpointError(DSPDeployError):
    """A checkpoint file is missing, corrupt, of the wrong kind or architecture."""


class ReferenceImportError(CheckpointError):
    """An authors' DSP TorchScript checkpoint could not be converted."""


class ExportError(DSPDeployError):
    """ONNX export failed: unsupported layer, checker failure, ..."""


class UnsupportedLayerError(ExportError):
    """The exporter cannot lower a layer type."""


class ParityError(ExportError):
    """The exported model's outputs do not match the PyTorch model's."""


class EngineBuildError(DSPDeployError):
    """TensorRT parsing or engine building failed, or no TensorRT flavour is installed."""


class DataError(DSPDeployError):
    """A dataset is missing or malformed."""


class TrainingError(DSPDeployError):
    """Training, pruning or fine-tuning cannot proceed (bad target, bad recipe, ...)."""


class BenchError(DSPDeployError):
    """A benchmark cannot run: unknown backend, unusable model file, bad batch size."""


class BackendUnavailable(BenchError):
    """A runtime is missing on this machine (no GPU, no CUDA provider, no TensorRT, ...).

    Benchmarks turn it into a ``skipped`` result row instead of failing.
    """


class ServingError(DSPDeployError):
    """A Triton model repository or the model server cannot be built, loaded or started."""


class LatencyModelError(DSPDeployError):
    """A latency table cannot be measured, read or used (corrupt, other target, unknown backend)."""
