"""A latency model measured on the target: per conv *site* (kernel, stride, input resolution),
timings at sampled (groups, per-group input channels, per-group filters), plus the fixed parts
(max-pool, pooling + classifier), and a predictor for a whole structure.

Sampling is sparse on purpose (ResNet-50 on 2 cores in a few minutes): the convs of a stage
share a site, each site is timed on a 3 x 3 grid of per-group channel counts (at least one
channel multiple .. all) for G = 1 and the pruning's G, and a conv's time is the bilinear
interpolation of its site's grid, which is exact for a + b*ci + c*co + d*ci*co (the shape of a
conv's cost). A conv with several live groups is predicted as the cheaper of its grouped
lowering (Gather + Conv(group=G) at the largest group's counts) and its one-group (union)
lowering. The shape rules of a backend that keeps the residual stream whole (`WHOLE_STREAM_BACKENDS`;
`prune --hardware-aware`, `--speedup`, `--latency-target`) price a conv as it will run there: a
block's last conv grouped plus writing the stream (restore gather, Add, Relu: measured once per
stream shape), or as one group writing every stream channel (zero rows for pruned filters, the Add
and Relu fused into it). The whole model is
``scale * sum(parts) + offset``, the two numbers fitted by least squares on the dense model and a few
pruned structures measured whole (layout reorders, fusions and the per-run overhead of the isolated
timings are what they absorb).

Timings come from the benchmark harness (`dsp_deploy.bench.harness.run_benchmark`: ONNX Runtime
CPU, interleaved, median), which sits above this module in the package layers: it is imported
inside the measuring functions only. Tables are cached as JSON (``dsp-deploy/latency-table``)
keyed by the target's fingerprint and library versions; a table from another target is refused.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp_deploy.errors import LatencyModelError
from dsp_deploy.models.topology import ROLE_BLOCK_OUT, ROLE_DOWNSAMPLE, ROLE_STEM, ConvSpec, Topology
from dsp_deploy.structure.ir import ConvStructure, ModelStructure
from dsp_deploy.targets import Target, channel_multiple, library_versions

log = logging.getLogger(__name__)

FORMAT_NAME = "dsp-deploy/latency-table"
FORMAT_VERSION = 5  # 2: several pruned calibration samples; 3: G=1 tables calibrated on channel-pruned ones;
# 4: stream writes of grouped block outputs; 5: DSP samples calibrated under the target's shape rules
# (`budget.target_shape`, as latency-targeted results are shaped). Older tables are re-measured, not refused.
GRID_POINTS = 3
# Table samples and calibration keep the minimum of the interleaved runs, like the export planner:
# on a shared machine it is the least disturbed estimate (medians there move 2-3x between runs).
STAT = "min"

WHOLE_STREAM_BACKENDS = ("ort-cpu",)
"""Backends whose export reads and writes the residual stream whole in a one-group conv: ONNX Runtime
CPU keeps the stream in its blocked NCHWc layout, where a channel Gather costs two layout reorders,
so the planner's one-group lowerings read every stream channel through zero weight columns, and a
block's last conv writes every stream channel (zero rows) so that the residual Add fuses into it."""


def site_key(spec: ConvSpec) -> str:
    """Convs with the same kernel, stride and input resolution share one measured grid."""
    h, w = spec.output_size
    kind = "stem" if spec.role == ROLE_STEM else "conv"
    return f"{kind}-k{spec.kernel_size}s{spec.stride}-{h * spec.stride}x{w * spec.stride}"


def stream_key(spec: ConvSpec) -> str:
    """The residual stream a block-output conv writes: channels x height x width."""
    h, w = spec.output_size
    return f"{spec.out_channels}x{h}x{w}"


def plan_stream_writes(topo: Topology) -> dict[str, tuple[int, tuple[int, int]]]:
    """Stream key -> (channels, (height, width)) of every residual stream a block output writes."""
    return {stream_key(s): (s.out_channels, tuple(s.output_size)) for s in topo.convs if s.role == ROLE_BLOCK_OUT}


def _grid(top: int, multiple: int, points: int = GRID_POINTS) -> list[int]:
    """``points`` channel counts from one multiple to ``top`` (multiples of ``multiple``, and ``top``)."""
    low = min(top, multiple)
    values = {low, top}
    for i in range(1, points - 1):
        mid = low + (top - low) * i / (points - 1)
        values.add(max(low, min(top, int(round(mid / multiple)) * multiple)))
    return sorted(values)


def plan_sites(topo: Topology, groups: Sequence[int], multiple: int) -> dict[str, dict[str, Any]]:
    """Site key -> shape and sample grids (ci = per-group inputs, co = per-group filters) per G."""
    sites: dict[str, dict[str, Any]] = {}
    for spec in topo.convs:
        key = site_key(spec)
        site = sites.setdefault(
            key,
            {
                "kernel": spec.kernel_size,
                "stride": spec.stride,
                "padding": spec.padding,
                "in_hw": [spec.output_size[0] * spec.stride, spec.output_size[1] * spec.stride],
                "ci_max": 0,
                "co_max": 0,
                "convs": [],
            },
        )
        site["ci_max"] = max(site["ci_max"], spec.in_channels)
        site["co_max"] = max(site["co_max"], spec.out_channels)
        site["convs"].append(spec.name)
    for key, site in sites.items():
        gs = [1] if key.startswith("stem") else sorted(set(groups) | {1})
        site["grids"] = {
            str(g): {"ci": _grid(site["ci_max"], multiple), "co": _grid(max(1, site["co_max"] // g), multiple)}
            for g in gs
        }
    return sites


def _interp(xs: Sequence[int], x: float) -> tuple[int, int, float]:
    """Bracketing indices of ``x`` in sorted ``xs`` and the weight of the upper one (extrapolates)."""
    if len(xs) == 1:
        return 0, 0, 0.0
    i = 0
    while i < len(xs) - 2 and x > xs[i + 1]:
        i += 1
    return i, i + 1, (x - xs[i]) / (xs[i + 1] - xs[i])


@dataclass
class LatencyTable:
    """Measured site grids and fixed parts of one model on one target (all times in ms)."""

    model: str
    target: dict[str, Any]
    key: str
    versions: dict[str, Any]
    sites: dict[str, dict[str, Any]]
    fixed: dict[str, float]
    scale: float = 1.0
    offset: float = 0.0
    notes: dict[str, Any] | None = None
    stream_writes: dict[str, float] | None = None  # stream key -> ms a grouped block output adds

    # -- prediction ---------------------------------------------------------------------------
    def _site_ms(self, key: str, groups: int, ci: int, co: int) -> float:
        site = self.sites.get(key)
        if site is None:
            raise LatencyModelError(
                f"the latency table of {self.model} has no conv site {key} (measured for "
                "another input size?); rebuild it"
            )
        grid = site["grids"].get(str(groups))
        if grid is None:
            raise LatencyModelError(
                f"the latency table of {self.model} has no timings for {groups} groups "
                f"(measured: {', '.join(site['grids'])}); rebuild it with these groups"
            )
        cis, cos, ms = grid["ci"], grid["co"], grid["ms"]
        i0, i1, a = _interp(cis, ci)
        j0, j1, b = _interp(cos, co)
        value = (
            (1 - a) * (1 - b) * ms[i0][j0] + a * (1 - b) * ms[i1][j0] + (1 - a) * b * ms[i0][j1] + a * b * ms[i1][j1]
        )
        return max(value, 0.0)

    def _option_shapes(self, spec: ConvSpec, layer: ConvStructure, whole_stream: bool
                       ) -> dict[str, tuple[int, int, int]]:
        """(groups, per-group inputs, per-group filters) each lowering of ``layer`` runs: ``union`` (one
        group) always, ``grouped`` (at the largest group's counts) when several groups own filters.
        ``whole_stream``: as the whole-stream rule shapes a one-group conv (`WHOLE_STREAM_BACKENDS`): a
        stream reader reads every stream channel, a block output writes them all."""
        live = [g for g in range(layer.groups) if layer.group_filters(g)]
        if not live:
            return {}
        reads = layer.in_channels if whole_stream and spec.reads.startswith("stream:") else len(layer.read_channels)
        filters = layer.out_channels if whole_stream and spec.role == ROLE_BLOCK_OUT else len(layer.kept_filters)
        shapes = {"union": (1, reads, filters)}
        if len(live) > 1:
            ci = max(len(layer.group_inputs[g]) for g in live)
            co = max(len(layer.group_filters(g)) for g in live)
            shapes["grouped"] = (layer.groups, ci, co)
        return shapes

    def conv_options(self, spec: ConvSpec, layer: ConvStructure, *, whole_stream: bool = False) -> dict[str, float]:
        """Predicted ms of ``layer`` per lowering (see `_option_shapes`). ``whole_stream`` (the shape rules
        of a `WHOLE_STREAM_BACKENDS` target): a one-group conv as that rule shapes it, and a grouped block
        output also paying the stream write its export adds (``stream_writes``)."""
        shapes = self._option_shapes(spec, layer, whole_stream)
        if not shapes:
            return {"union": 0.0}
        key = site_key(spec)
        options = {name: self._site_ms(key, g, ci, co) for name, (g, ci, co) in shapes.items()}
        if "grouped" in options and whole_stream and spec.role == ROLE_BLOCK_OUT:
            options["grouped"] += (self.stream_writes or {}).get(stream_key(spec), 0.0)
        return options

    def option_macs(self, spec: ConvSpec, layer: ConvStructure, *, whole_stream: bool = False) -> dict[str, int]:
        """The MACs (per image) a FLOPs count charges each lowering of `conv_options`: the layer as it
        is for ``grouped``, the one-group shape of `_option_shapes` for ``union``."""
        shapes = self._option_shapes(spec, layer, whole_stream)
        h, w = spec.output_size
        out = {"union": shapes["union"][1] * shapes["union"][2] * spec.kernel_size ** 2 * h * w} if shapes else {}
        if "grouped" in shapes:
            out["grouped"] = layer.macs(spec.output_size)
        return out

    def conv_ms_per_mac(self, topo: Topology) -> float:
        """Predicted ms per MAC of the dense model's prunable convs (the block bodies; table units): what a
        MAC pruned elsewhere saves on average, the exchange rate of a FLOPs target
        (`budget.fallback_to_one_group`)."""
        from dsp_deploy.structure.build import dense_structure

        dense = dense_structure(topo)
        body = [s for s in topo.convs if s.role not in (ROLE_STEM, ROLE_DOWNSAMPLE)]
        ms = sum(min(self.conv_options(s, dense.layer(s.name)).values()) for s in body)
        macs = sum(s.dense_macs() for s in body)
        return ms / macs if macs else 0.0

    def parts_ms(self, structure: ModelStructure, topo: Topology) -> float:
        """Sum of the predicted conv times (cheapest lowering each) and the fixed parts."""
        total = sum(self.fixed.values())
        for spec in topo.convs:
            total += min(self.conv_options(spec, structure.layer(spec.name)).values())
        return total

    def predict(self, structure: ModelStructure, topo: Topology | None = None) -> float:
        """Predicted whole-model latency (ms) of ``structure`` on this table's target."""
        from dsp_deploy.structure.validate import topology_for

        if structure.model != self.model:
            raise LatencyModelError(f"the latency table is for {self.model}, not {structure.model}")
        return self.scale * self.parts_ms(structure, topo or topology_for(structure)) + self.offset

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "key": self.key,
            "target": self.target,
            "versions": self.versions,
            "scale": self.scale,
            "offset": self.offset,
            "fixed": self.fixed,
            "sites": self.sites,
            "stream_writes": self.stream_writes or {},
            "notes": self.notes or {},
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        import json

        from dsp_deploy.utils.atomic import write_text_atomic

        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str], target: Target) -> LatencyTable:
        """Read a table, refusing (one line) a corrupt file or one measured on another target."""
        from dsp_deploy.utils.jsonfile import read_json_object

        data = read_json_object(path, LatencyModelError, "latency table", format_name=FORMAT_NAME)
        if data.get("format_version") != FORMAT_VERSION:
            raise LatencyModelError(
                f"{os.fspath(path)}: latency table format_version {data.get('format_version')!r}; "
                f"this dsp-deploy reads {FORMAT_VERSION}"
            )
        try:
            table = cls(
                data["model"],
                dict(data["target"]),
                str(data["key"]),
                dict(data["versions"]),
                dict(data["sites"]),
                {k: float(v) for k, v in data["fixed"].items()},
                float(data["scale"]),
                float(data["offset"]),
                dict(data.get("notes") or {}),
                {k: float(v) for k, v in data["stream_writes"].items()},
            )
            for site in table.sites.values():
                for grid in site["grids"].values():
                    if len(grid["ms"]) != len(grid["ci"]) or any(len(r) != len(grid["co"]) for r in grid["ms"]):
                        raise ValueError("grid size mismatch")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LatencyModelError(f"{os.fspath(path)}: corrupt latency table ({type(exc).__name__}: {exc})") from None
        expected = target.cache_key()
        if table.key != expected:
            theirs = table.target.get("fingerprint", {})
            raise LatencyModelError(
                f"{os.fspath(path)} was measured on another target ({theirs.get('cpu')}, {theirs.get('isa')}, "
                f"onnxruntime {table.versions.get('onnxruntime')}, key {table.key}); this one is "
                f"{target.fingerprint.cpu}, {target.fingerprint.isa}, key {expected}: delete it to re-measure"
            )
        return table


def default_table_path(model: str, target: Target, topo: Topology | None = None, family: str | None = None) -> Path:
    """~/.cache/dsp-deploy/latency/<model>[-<H>x<W>-<classes>][-<family>]-<target key>.json (XDG_CACHE_HOME
    respected); ``family``: the structures the table is calibrated on, when not DSP's (e.g. "channels")."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    shape = f"-{topo.input_size[0]}x{topo.input_size[1]}-{topo.num_classes}" if topo is not None else ""
    kind = f"-{family}" if family else ""
    return Path(base) / "dsp-deploy" / "latency" / f"{model}{shape}{kind}-{target.cache_key()}.json"


# -- measuring --------------------------------------------------------------------------------
def time_onnx(
    models: Mapping[str, bytes], target: Target, *, runs: int, warmup: int = 3, stat: str = STAT
) -> dict[str, float]:
    """``stat`` ms ("min" or "median") of each serialized ONNX model, timed interleaved by the
    benchmark harness."""
    from dsp_deploy.hardware.whole import time_files

    if target.backend != "ort-cpu":
        raise LatencyModelError(f"latency tables can only be measured for ort-cpu today, not {target.backend}")
    with tempfile.TemporaryDirectory(prefix="dsp-latency-") as tmp:
        paths = {}
        for i, (name, blob) in enumerate(models.items()):
            paths[name] = Path(tmp) / f"m{i}.onnx"
            paths[name].write_bytes(blob)
        return time_files(paths, target, runs=runs, warmup=warmup, stat=stat)


def build_table(
    model: str,
    target: Target,
    groups: Sequence[int],
    *,
    runs: int = 15,
    calibrate: Callable[[LatencyTable, Target], None] | None = None,
    topo: Topology | None = None,
) -> LatencyTable:
    """Measure ``model``'s sites for G in ``groups`` (and 1) and its fixed parts on ``target``;
    ``calibrate`` (e.g. `calibrate_whole_model`) then fits scale and offset."""
    from dsp_deploy.hardware import onnx_samples
    from dsp_deploy.models import get_config, topology

    topo = topo or topology(model)
    multiple = channel_multiple(target)
    sites = plan_sites(topo, groups, multiple)
    for key, site in sites.items():
        blobs = {}
        for g, grid in site["grids"].items():
            for ci in grid["ci"]:
                for co in grid["co"]:
                    blobs[f"{g}/{ci}/{co}"] = onnx_samples.conv_sample(site, int(g), ci, co, target.batch)
        times = time_onnx(blobs, target, runs=runs)
        for g, grid in site["grids"].items():
            grid["ms"] = [[round(times[f"{g}/{ci}/{co}"], 5) for co in grid["co"]] for ci in grid["ci"]]
        log.info("latency table %s: site %s measured (%d samples)", model, key, len(blobs))
    streams = plan_stream_writes(topo) if target.backend in WHOLE_STREAM_BACKENDS else {}
    writes = time_onnx(
        {key: onnx_samples.stream_write_sample(c, hw, target.batch) for key, (c, hw) in streams.items()},
        target, runs=runs,
    ) if streams else {}
    fixed = time_onnx(
        onnx_samples.fixed_parts(topo, target.batch, get_config(model).family == "imagenet"), target, runs=runs
    )
    table = LatencyTable(
        model,
        target.to_dict(),
        target.cache_key(),
        dict(library_versions()),
        sites,
        {k: round(v, 5) for k, v in fixed.items()},
        notes={"runs": runs, "groups": list(groups), "statistic": STAT},
        stream_writes={k: round(v, 5) for k, v in writes.items()},
    )
    if calibrate is not None:
        calibrate(table, target)
    return table


def fit_calibration(table: LatencyTable, samples: Sequence[tuple[ModelStructure, float]]) -> None:
    """Fit ``scale`` and ``offset`` so that scale * parts + offset matches measured whole-model ms.

    The first sample (the dense model) fixes the scale alone; with more, the least-squares line
    through all of them is used when its slope lies within 0.2x-2x of that scale (outside, the
    exporter fell back to dense for the pruned samples or load disturbed a timing: the dense-only
    scale is kept). Several pruned samples spread over the pruning range keep one disturbed timing
    from tilting the line (one sample did: ResNet-50's offset came out at a third of dense)."""
    from dsp_deploy.structure.validate import topology_for

    xs = [table.parts_ms(s, topology_for(s)) for s, _ in samples]
    ys = [ms for _, ms in samples]
    table.scale, table.offset = (ys[0] / xs[0] if xs[0] > 0 else 1.0), 0.0
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if n >= 2 and sxx > 1e-12:
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
        if 0.2 * table.scale <= slope <= 2.0 * table.scale:
            table.scale, table.offset = slope, mean_y - slope * mean_x


def _older_format(file: Path) -> bool:
    """True for a readable latency table written with an older ``format_version`` (anything else,
    corrupt files included, is left to `LatencyTable.load` to judge)."""
    import json

    try:
        data = json.loads(file.read_text())
        version = data.get("format_version") if data.get("format") == FORMAT_NAME else None
        return isinstance(version, int) and version < FORMAT_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def load_or_build(
    model: str,
    target: Target,
    groups: Sequence[int],
    *,
    path: str | os.PathLike[str] | None = None,
    runs: int = 15,
    calibrate: Callable[[LatencyTable, Target], None] | None = None,
    topo: Topology | None = None,
    family: str | None = None,
) -> LatencyTable:
    """The cached table for ``model`` on ``target`` (refused if from another target or corrupt),
    measured and saved when absent or when it lacks one of ``groups``; ``family``: see `default_table_path`."""
    file = Path(path) if path else default_table_path(model, target, topo, family)
    if file.exists() and _older_format(file):
        log.info("%s is a latency table of an older format (calibration changed): re-measuring", file)
    elif file.exists():
        table = LatencyTable.load(file, target)
        if table.model != model:
            raise LatencyModelError(f"{file} is the latency table of {table.model}, not {model}")
        have = {int(g) for site in table.sites.values() for g in site["grids"]}
        if set(groups) <= have:
            return table
        log.info("%s lacks timings for groups %s: re-measuring", file, sorted(set(groups) - have))
    log.info("measuring the latency table of %s on %s", model, target.describe())
    table = build_table(model, target, groups, runs=runs, calibrate=calibrate, topo=topo)
    file.parent.mkdir(parents=True, exist_ok=True)
    table.save(file)
    return table
