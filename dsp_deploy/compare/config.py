"""What a comparison runs: the model, where the DSP variant comes from, baselines, backends, batches.

Torch-free; ``CompareConfig.validated()`` turns every bad option into a one-line UsageError before
anything heavy starts.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from dsp_deploy.bench.variants import parse_backends, parse_batches
from dsp_deploy.errors import UsageError
from dsp_deploy.export.plan import check_mode
from dsp_deploy.models import get_config

BASELINES: tuple[str, ...] = ("l1", "l1-inner", "tp", "pfs", "scp", "dppnet")
TRAINED_BASELINES: tuple[str, ...] = ("pfs", "scp")  # may name a trained checkpoint: "pfs=RUN/final.pt"
DEFAULT_BASELINES: tuple[str, ...] = ("l1", "tp")
QUICK_RUNS = 10
QUICK_WARMUP = 3
QUICK_BATCHES: tuple[int, ...] = (1, 8)
DEFAULT_BATCHES: tuple[int, ...] = (1, 8, 32)
DEFAULT_RUNS = 50


@dataclass(frozen=True)
class CompareConfig:
    """One comparison. Give ``checkpoint`` (a pruned DSP checkpoint, an authors' TorchScript file, or a
    dense checkpoint together with ``groups``/``flops_reductions``), or ``model`` with ``groups`` and
    ``flops_reductions`` for a one-shot DSP model from random (or ``dense_weights``) dense weights."""

    model: str | None = None
    checkpoint: str | None = None
    groups: int | None = None
    flops_reductions: tuple[float, ...] = ()
    flops_metric: str | None = None          # "dsp" or "total"; default: the model family's convention
    dense_weights: str | None = None         # state_dict file for the dense model (one-shot mode)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    backends: tuple[str, ...] = ("ort-cpu",)
    batches: tuple[int, ...] = DEFAULT_BATCHES
    threads: tuple[int, ...] = ()            # empty: the usable cores
    runs: int | None = None
    warmup: int = 10
    time_budget: float | None = None
    lowering: str = "auto"                   # our exporter's lowering for the DSP and L1 variants
    runs_by_batch: tuple[tuple[int, int], ...] = ()  # (batch, runs) overriding ``runs`` at that batch
    tolerance: float = 0.01
    seed: int = 0
    keep_models: bool = True
    quick: bool = False
    label: str | None = None                 # report title; default from the model and the DSP source
    match: str = "flops"                     # baselines matched to DSP's "flops" or measured "latency"
    match_batch: int | None = None           # batch the latency match is measured at (default: the largest)
    match_steps: int = 6                     # measurements per baseline when matching latency
    notes: tuple[str, ...] = field(default_factory=tuple)

    def runs_at(self, batch: int) -> int | None:
        """Timed rounds at ``batch`` (``runs_by_batch`` first, then ``runs``)."""
        return dict(self.runs_by_batch).get(batch, self.runs)

    def validated(self) -> CompareConfig:
        """A checked copy with quick-mode and default values filled in."""
        if self.model is None and self.checkpoint is None:
            raise UsageError("give --model NAME (with --groups and --flops-reduction) or --checkpoint CKPT")
        if self.model is not None:
            get_config(self.model)  # ModelError naming the choices
        if self.checkpoint is None and (self.groups is None or not self.flops_reductions):
            raise UsageError("without --checkpoint, give both --groups G and --flops-reduction R")
        if (self.groups is None) != (not self.flops_reductions):
            raise UsageError("--groups and --flops-reduction go together")
        if self.groups is not None and self.groups < 1:
            raise UsageError(f"--groups must be >= 1, got {self.groups}")
        for r in self.flops_reductions:
            if not 0.0 < r < 1.0:
                raise UsageError(f"--flops-reduction must be a fraction in (0, 1), e.g. 0.6; got {r}")
        if self.flops_metric not in (None, "dsp", "total"):
            raise UsageError(f"--flops-metric must be 'dsp' or 'total', got '{self.flops_metric}'")
        if self.dense_weights is not None and self.checkpoint is not None:
            raise UsageError("--dense-weights is for one-shot mode; a --checkpoint brings its own weights")
        for b in self.baselines:
            _check_baseline(b)
        if not 0.0 < self.tolerance < 0.2:
            raise UsageError(f"FLOPs tolerance must be in (0, 0.2), got {self.tolerance}")
        if any(t < 1 for t in self.threads):
            raise UsageError(f"--threads values must be >= 1, got {','.join(map(str, self.threads))}")
        if self.runs is not None and self.runs < 1:
            raise UsageError(f"--runs must be >= 1, got {self.runs}")
        if any(b < 1 or r < 1 for b, r in self.runs_by_batch):
            raise UsageError("runs per batch must be positive (batch, runs) pairs")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.match not in ("flops", "latency"):
            raise UsageError(f"--match must be 'flops' or 'latency', got '{self.match}'")
        if self.match_batch is not None and self.match_batch < 1:
            raise UsageError(f"--match-batch must be >= 1, got {self.match_batch}")
        if self.match_steps < 1:
            raise UsageError(f"match steps must be >= 1, got {self.match_steps}")

        check_mode(self.lowering)
        backends = parse_backends(self.backends)
        batches = parse_batches(self.batches)
        if self.runs_by_batch and self.time_budget is not None:
            raise UsageError("give runs per batch or a time budget, not both")
        runs, warmup = self.runs, self.warmup
        match_steps = self.match_steps
        if self.quick:
            match_steps = min(match_steps, 3)
            runs = runs or QUICK_RUNS
            warmup = min(warmup, QUICK_WARMUP)
        elif runs is None and self.time_budget is None:
            runs = DEFAULT_RUNS
        return replace(self, backends=backends, batches=batches, runs=runs, warmup=warmup, match_steps=match_steps,
                       baselines=tuple(dict.fromkeys(self.baselines)),
                       flops_reductions=tuple(dict.fromkeys(self.flops_reductions)))


def _parse_list(spec: str | Sequence[float] | None, what: str, kind: type, noun: str) -> tuple:
    """``"0.5,0.7"`` -> values of ``kind``; UsageError naming ``what`` for an item that is not one."""
    if spec is None:
        return ()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    values = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            values.append(kind(item))
        except (TypeError, ValueError):
            raise UsageError(f"{what} '{item}' is not {noun}") from None
    return tuple(values)


def parse_floats(spec: str | Sequence[float] | None, what: str) -> tuple[float, ...]:
    """``"0.5,0.7"`` -> (0.5, 0.7); UsageError naming ``what`` otherwise."""
    return _parse_list(spec, what, float, "a number")


def parse_ints(spec: str | Sequence[int] | None, what: str) -> tuple[int, ...]:
    """``"1,2"`` -> (1, 2); UsageError naming ``what`` otherwise."""
    return _parse_list(spec, what, int, "an integer")


def parse_baselines(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"l1,tp"`` / ``"none"`` -> validated names."""
    if spec is None:
        return DEFAULT_BASELINES
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [i.strip().lower() for i in items if i and i.strip()]
    if names == ["none"]:
        return ()
    items = [i.strip() for i in items if i and i.strip()]
    for item in items:
        _check_baseline(item)
    return tuple(dict.fromkeys(items))


def split_baseline(item: str) -> tuple[str, str | None]:
    """``"pfs=RUN/final.pt"`` -> ("pfs", "RUN/final.pt"); ``"l1"`` -> ("l1", None)."""
    name, sep, path = item.partition("=")
    return name.strip().lower(), (path.strip() if sep else None)


def _check_baseline(item: str) -> None:
    name, path = split_baseline(item)
    if name not in BASELINES:
        raise UsageError(f"unknown baseline '{name}'; valid: {', '.join(BASELINES)} (or 'none')")
    if path is not None and (name not in TRAINED_BASELINES or not path):
        raise UsageError(f"baseline '{item}': only {' and '.join(TRAINED_BASELINES)} take a trained checkpoint "
                         f"('pfs=CKPT')")
