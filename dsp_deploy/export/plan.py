"""The lowering plan: for every conv, how it is lowered; written as JSON next to the ONNX file
and printed as a short table."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dsp_deploy.errors import ExportError, UsageError
from dsp_deploy.utils.jsonfile import DocFormat

LOWERINGS = ("grouped", "branches", "union", "dense")
MODES = ("auto", *LOWERINGS)
ORT_CPU = "onnxruntime-cpu"
TENSORRT = "tensorrt"  # TensorRT or TensorRT for RTX
BACKENDS = (ORT_CPU, TENSORRT)  # the targets a plan can be made for
# model.onnx.plan.json; the first plans wrote the version as "version" only. Version 2 adds
# "passes" (each export pass's applications and skip reasons); version-1 plans load without them.
PLAN_FORMAT = DocFormat("lowering-plan", 2, "lowering plan", old_version_keys=("version",))


@dataclass(frozen=True)
class LayerChoice:
    """How one conv is lowered.

    lowering: grouped | branches | union | dense;  pad: round group/filter counts up to this
    multiple (16 = MLAS NCHWc block);  in_pad: same for the union's input channels (0: read
    every input channel, no input Gather);
    aligned: write the output straight in the model's channel order (pruned filters as zero
    rows; for a block's last conv this makes the residual Add a plain Add that fuses);
    split (grouped only): large groups become several equal virtual groups (layouts.py)."""

    lowering: str = "dense"
    pad: int = 1
    in_pad: int = 1
    aligned: bool = False
    split: bool = False

    def label(self) -> str:
        text = self.lowering
        if self.pad > 1 or self.in_pad > 1:
            text += f"/{max(self.pad, self.in_pad)}"
        if self.in_pad == 0:
            text += "+all-inputs"
        if self.aligned:
            text += "+aligned"
        if self.split:
            text += "+split"
        return text


@dataclass
class PassResult:
    """One export pass's report: how often it applied and at which nodes, and why it did not
    apply elsewhere (node name -> reason, e.g. lower-conv: "layer1.0.conv1" -> "dense by plan")."""

    name: str
    applied: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    applied_at: list[str] = field(default_factory=list)

    def record(self, node: str) -> None:
        """The pass applied at ``node`` (a skip recorded for it in an earlier sweep no longer holds)."""
        self.applied += 1
        self.applied_at.append(node)
        self.skipped.pop(node, None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "applied": self.applied, "applied_at": self.applied_at, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PassResult:
        return cls(str(data["name"]), int(data["applied"]), dict(data.get("skipped", {})),
                   list(data.get("applied_at", [])))


@dataclass
class LoweringPlan:
    """Per-layer choices plus what the planner measured (per unit: candidate -> ms).

    ``backend`` is the runtime the plan was made for, ``machine`` where it was made (CPU, GPU,
    runtime version), ``measured`` whether the choices come from timings taken there (False for
    forced lowerings and for the TensorRT default used where no TensorRT runtime can run);
    ``passes`` what each export pass did to the graph, in the order they ran (see ``skips``)."""

    mode: str
    layers: dict[str, LayerChoice]
    measurements: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # unit -> cand -> batch
    chosen: dict[str, str] = field(default_factory=dict)  # unit (block) -> candidate name
    backend: str = ORT_CPU
    notes: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    measured: bool = False
    passes: list[PassResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**PLAN_FORMAT.header(), "mode": self.mode,
                "backend": self.backend, "measured": self.measured, "machine": self.machine,
                "layers": {k: asdict(v) for k, v in self.layers.items()}, "chosen": self.chosen,
                "measurements_ms": self.measurements, "notes": self.notes,
                "passes": [result.to_dict() for result in self.passes]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoweringPlan:
        layers = {k: LayerChoice(**v) for k, v in data["layers"].items()}
        measured = bool(data.get("measured", data["mode"] == "auto"))  # older plans: auto was measured on ORT
        passes = [PassResult.from_dict(p) for p in data.get("passes", [])]  # format_version 1: none recorded
        return cls(data["mode"], layers, dict(data.get("measurements_ms", {})), dict(data.get("chosen", {})),
                   data.get("backend", ORT_CPU), dict(data.get("notes", {})), dict(data.get("machine", {})), measured,
                   passes)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LoweringPlan:
        """Read a plan JSON written by export_onnx (ExportError naming the file if it is not one)."""
        data = PLAN_FORMAT.read(path, ExportError)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ExportError(f"{os.fspath(path)}: malformed lowering plan ({type(exc).__name__}: {exc})") from None

    def skips(self, node: str) -> list[tuple[str, str]]:
        """(pass, reason) for every pass that left ``node`` (a node name; a conv's is its layer
        name) as it was: e.g. why conv X stayed dense."""
        return [(result.name, result.skipped[node]) for result in self.passes if node in result.skipped]

    def table(self) -> str:
        """Short text table: one line per planning unit with its choice and timings."""
        unmeasured = "" if self.measured or self.mode != "auto" else ", not measured"
        lines = [f"lowering plan ({self.mode}, {self.backend}{unmeasured})"]
        if self.chosen:
            width = max(len(u) for u in self.chosen)
            for unit, cand in self.chosen.items():
                times = self.measurements.get(unit, {})
                mine, dense = times.get(cand, {}), times.get("dense", {})
                cells = [f"{b} {mine[b]:.3f}/{dense[b]:.3f}" for b in mine if b in dense]
                extra = f"  ms (chosen/dense): {', '.join(cells)}" if cells and cand != "dense" else ""
                lines.append(f"  {unit:<{width}}  {cand:<16}{extra}")
        else:
            counts: dict[str, int] = {}
            for choice in self.layers.values():
                counts[choice.label()] = counts.get(choice.label(), 0) + 1
            lines += [f"  {label}: {n} conv(s)" for label, n in sorted(counts.items())]
        if self.notes.get("not_measured"):
            lines.append(f"  {self.notes['not_measured']}")
        narrowed = self.notes.get("narrowed_streams")
        if narrowed:
            lines.append("  streams narrowed to their live channels: "
                         + ", ".join(f"{name} {widths}" for name, widths in narrowed.items()))
        whole = self.notes.get("whole_model_min_ms")
        if whole:
            cells = ", ".join(f"{b} {t['auto']:.3f}/{t['dense']:.3f}" for b, t in whole.items())
            lines.append(f"  whole model, ms (planned/dense): {cells}"
                         + (f"  -> {self.notes['fallback']}: dense exported" if self.notes.get("fallback") else ""))
        return "\n".join(lines)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise UsageError(f"unknown plan backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    return backend


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown lowering '{mode}' (choose from: {', '.join(MODES)})")
    return mode
