"""The export options as one validated object, with export-profile merging inside it: what the
`export` command and library callers hand to `export_onnx` / `export_torch`."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dsp_deploy.errors import OptionError, UsageError
from dsp_deploy.export.plan import BACKENDS, ORT_CPU, check_mode
from dsp_deploy.export.profiles import load_profile

OPSETS = range(13, 22)


@dataclass(frozen=True)
class ExportOptions:
    """Lowering mode, precision, opset, planner batches and channel alignment, the backend the
    plan is for; validated on construction (OptionError naming the field; ``channel_multiple`` is
    checked by the exporter, which resolves None to this machine's alignment)."""

    lowering: str = "auto"
    fp16: bool = False
    opset: int = 17
    plan_batches: tuple[int, ...] | None = None
    channel_multiple: int | None = None
    backend: str = ORT_CPU

    def __post_init__(self) -> None:
        try:
            check_mode(self.lowering)
        except UsageError as exc:
            raise OptionError(exc.detail.replace("lowering", "{option}", 1), "lowering") from None
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or self.opset not in OPSETS:
            raise OptionError(f"{{option}} {self.opset} is not supported ({OPSETS[0]}..{OPSETS[-1]}; default 17)",
                              "opset")
        if self.backend not in BACKENDS:
            raise OptionError(f"unknown {{option}} '{self.backend}' (choose from: {', '.join(BACKENDS)})", "backend")
        if self.plan_batches is not None:
            object.__setattr__(self, "plan_batches", tuple(self.plan_batches))

    @classmethod
    def from_profile(cls, profile: str | Mapping[str, Any] | None, **given: Any) -> ExportOptions:
        """Options from ``given`` (fields; None = unset) over an export profile (a shipped one by
        name, a JSON file, or its loaded options) over the defaults."""
        preset = dict(load_profile(profile) if isinstance(profile, str) else (profile or {}))
        return cls(**{**preset, **{k: v for k, v in given.items() if v is not None}})

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `export_onnx` these options set."""
        return {"lowering": self.lowering, "fp16": self.fp16, "opset": self.opset,
                "plan_batches": list(self.plan_batches) if self.plan_batches is not None else None,
                "channel_multiple": self.channel_multiple, "backend": self.backend}
