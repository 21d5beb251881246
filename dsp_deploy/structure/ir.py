"""The structure IR: for every conv, its groups, the filter->group assignment and the input
channels each group keeps. Every stage (training, import, export, bench) reads and writes it.

A conv with ``groups == 1`` and all filters in group 0 is plain channel pruning, so channel-
pruning baselines and DSP share one representation. ``PRUNED`` (-1) marks a removed filter.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dsp_deploy.errors import StructureError
from dsp_deploy.utils.jsonfile import DocFormat

# structure.json; releases before format_version wrote the version as "schema_version".
STRUCTURE_FORMAT = DocFormat("structure", 1, "structure document", old_version_keys=("schema_version",))
SCHEMA_VERSION = STRUCTURE_FORMAT.version
PRUNED = -1
# Sanity bounds: a model must be buildable from the document (an fc of 10**20 classes is not).
MAX_CLASSES = 1_000_000
MAX_INPUT_SIDE = 16_384


@dataclass(frozen=True)
class ConvStructure:
    """How one conv is pruned. ``group_inputs[g]`` are the sorted input channels group g reads."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    groups: int
    filter_groups: tuple[int, ...]
    group_inputs: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_groups", tuple(int(g) for g in self.filter_groups))
        object.__setattr__(self, "group_inputs", tuple(tuple(int(c) for c in chans) for chans in self.group_inputs))
        self._check_self_consistent()

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def dense(cls, name: str, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> ConvStructure:
        """An unpruned conv: one group holding every filter and reading every channel."""
        return cls(name, in_channels, out_channels, kernel_size, stride, 1,
                   (0,) * out_channels, (tuple(range(in_channels)),))

    def replace(self, *, filter_groups: Iterable[int] | None = None,
                group_inputs: Iterable[Iterable[int]] | None = None, groups: int | None = None) -> ConvStructure:
        """A copy with a new assignment and/or new kept inputs (validated again)."""
        new_inputs = tuple(tuple(sorted(c)) for c in group_inputs) if group_inputs is not None else self.group_inputs
        return ConvStructure(
            self.name, self.in_channels, self.out_channels, self.kernel_size, self.stride,
            groups if groups is not None else len(new_inputs),
            tuple(filter_groups) if filter_groups is not None else self.filter_groups,
            new_inputs,
        )

    # -- derived views --------------------------------------------------------------------
    def group_filters(self, group: int) -> tuple[int, ...]:
        """Output filters assigned to ``group``, in increasing order."""
        return tuple(f for f, g in enumerate(self.filter_groups) if g == group)

    @property
    def kept_filters(self) -> tuple[int, ...]:
        return tuple(f for f, g in enumerate(self.filter_groups) if g != PRUNED)

    @property
    def read_channels(self) -> tuple[int, ...]:
        """Union of the input channels any group with filters reads."""
        used = {c for g, chans in enumerate(self.group_inputs) if self.group_filters(g) for c in chans}
        return tuple(sorted(used))

    @property
    def is_dense(self) -> bool:
        return not any(g == PRUNED for g in self.filter_groups) and all(
            len(chans) == self.in_channels for chans in self.group_inputs)

    def kernel_params(self) -> int:
        """Kept conv weights: sum over groups of filters x inputs x k x k."""
        k2 = self.kernel_size**2
        return sum(len(self.group_filters(g)) * len(chans) * k2 for g, chans in enumerate(self.group_inputs))

    def macs(self, output_size: tuple[int, int]) -> int:
        """Multiply-accumulates at ``output_size`` (grouped: each group's filters x its inputs)."""
        return self.kernel_params() * output_size[0] * output_size[1]

    # -- validation -----------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        raise StructureError(message, layer=self.name)

    def _check_self_consistent(self) -> None:
        if self.groups < 1:
            self._fail(f"groups must be >= 1, got {self.groups}")
        if len(self.group_inputs) != self.groups:
            self._fail(f"{self.groups} groups declared but {len(self.group_inputs)} input lists given")
        if len(self.filter_groups) != self.out_channels:
            self._fail(f"filter_groups has {len(self.filter_groups)} entries for {self.out_channels} filters")
        for f, g in enumerate(self.filter_groups):
            if g != PRUNED and not 0 <= g < self.groups:
                self._fail(f"filter {f} is assigned to group {g}, outside 0..{self.groups - 1} (or -1 = pruned)")
        for g, chans in enumerate(self.group_inputs):
            if len(set(chans)) != len(chans):
                dup = sorted({c for c in chans if chans.count(c) > 1})
                self._fail(f"group {g} lists input channel(s) {dup} more than once")
            bad = [c for c in chans if not 0 <= c < self.in_channels]
            if bad:
                self._fail(f"group {g} reads input channel(s) {bad} outside 0..{self.in_channels - 1}")
            if list(chans) != sorted(chans):
                self._fail(f"group {g} input channels are not sorted")
            if self.group_filters(g) and not chans:
                self._fail(f"group {g} has filters but reads no input channel")

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "groups": self.groups,
            "filter_groups": list(self.filter_groups),
            "group_inputs": [list(c) for c in self.group_inputs],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "?") -> ConvStructure:
        """Parse one layer entry strictly: JSON integers only (no bools, floats or digit strings,
        which ``int()`` would silently accept or truncate). ``where`` names an entry without a name."""
        if not isinstance(data, Mapping):
            raise StructureError(f"layer entry is a {type(data).__name__}, not a JSON object", layer=where)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise StructureError(f"layer entry has no \"name\" string (got {_short(name)})", layer=where)
        try:
            ints = [_json_int(data[key], key)
                    for key in ("in_channels", "out_channels", "kernel_size", "stride", "groups")]
            filter_groups = _json_int_list(data["filter_groups"], "filter_groups")
            raw_inputs = data["group_inputs"]
            if not isinstance(raw_inputs, list):
                raise TypeError(f"group_inputs must be a list of lists, got {_short(raw_inputs)}")
            group_inputs = tuple(_json_int_list(c, f"group_inputs[{g}]") for g, c in enumerate(raw_inputs))
        except KeyError as exc:
            raise StructureError(f"malformed layer entry (no key {exc})", layer=name) from None
        except TypeError as exc:
            raise StructureError(f"malformed layer entry: {exc}", layer=name) from None
        return cls(name, *ints, filter_groups, group_inputs)


def _short(value: Any) -> str:
    """Type and a bounded repr of a rejected JSON value, for one-line messages."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _json_int(value: Any, what: str) -> int:
    """``value`` if it is an integer (not a bool), else TypeError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, got {_short(value)}")
    return value


def _json_int_list(value: Any, what: str) -> tuple[int, ...]:
    """A JSON list of integers as a tuple, else TypeError naming ``what``."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be a list of integers, got {_short(value)}")
    return tuple(_json_int(v, f"{what}[{i}]") for i, v in enumerate(value))


@dataclass(frozen=True)
class ModelStructure:
    """The pruned structure of a whole model: one ConvStructure per conv, in execution order."""

    model: str
    num_classes: int
    input_size: tuple[int, int]
    layers: tuple[ConvStructure, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> ConvStructure:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise StructureError("no such layer in the structure", layer=name)

    def with_layers(self, updates: Mapping[str, ConvStructure]) -> ModelStructure:
        """A copy where the named layers are replaced (the result is not re-validated here)."""
        return ModelStructure(self.model, self.num_classes, self.input_size,
                              tuple(updates.get(l.name, l) for l in self.layers), dict(self.metadata))

    @property
    def in_channels(self) -> int:
        """Channels of the input image: what the first conv (the stem) reads."""
        return self.layers[0].in_channels if self.layers else 3

    @property
    def max_groups(self) -> int:
        return max((l.groups for l in self.layers), default=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            **STRUCTURE_FORMAT.header(),
            "model": self.model,
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "metadata": dict(self.metadata),
            "layers": [l.to_dict() for l in self.layers],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelStructure:
        """Parse (and fully validate against the model's topology) a structure dict."""
        from dsp_deploy.structure.validate import validate_structure

        STRUCTURE_FORMAT.check(data, StructureError, "")
        try:
            model, layers, metadata = data["model"], data["layers"], data.get("metadata") or {}
            if not isinstance(model, str):
                raise TypeError(f"model must be a string, got {_short(model)}")
            num_classes = _json_int(data["num_classes"], "num_classes")
            input_size = _json_int_list(data["input_size"], "input_size")
            if not isinstance(layers, list):
                raise TypeError(f"layers must be a list, got {_short(layers)}")
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata must be an object, got {_short(metadata)}")
        except KeyError as exc:
            raise StructureError(f"malformed structure document (no key {exc})") from None
        except TypeError as exc:
            raise StructureError(f"malformed structure document: {exc}") from None
        if not 1 <= num_classes <= MAX_CLASSES:
            raise StructureError(f"num_classes {num_classes} is outside 1..{MAX_CLASSES}")
        if len(input_size) != 2 or not all(1 <= s <= MAX_INPUT_SIDE for s in input_size):
            raise StructureError(f"input_size {list(input_size)[:4]} is not [height, width] within 1..{MAX_INPUT_SIDE}")
        structure = cls(model, num_classes, input_size,  # type: ignore[arg-type]
                        tuple(ConvStructure.from_dict(l, f"layers[{i}]") for i, l in enumerate(layers)),
                        dict(metadata))
        validate_structure(structure)
        return structure

    @classmethod
    def from_json(cls, text: str) -> ModelStructure:
        if not isinstance(text, (str, bytes, bytearray)):
            raise StructureError(f"structure is a {type(text).__name__}, not JSON text")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, a 5000-digit number, deep nesting
            raise StructureError(f"structure is not valid JSON: {str(exc)[:200]}") from None
        return cls.from_dict(data)
