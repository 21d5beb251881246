"""DSP latency-targeted pruning as a method of the accuracy-latency run ("dsp-latency").

It prunes the DSP group-learning checkpoint to the latency budget as `prune --speedup X` does
(``training.latency_prune.dsp_to_budget``): the target's latency table shapes the structure (aligned
group sizes, one group where groups don't pay) and gives the first try; while the measured result
misses the budget, its FLOPs reduction is corrected between measured tries (the run allows as many
measured tries as a ratio-searched method's latency match: ``match_steps``).
The run then measures the result like every other model, so its report shows the honest measured
latency. Importing this module registers the pruner with
``compare.latency_match`` (the frontier runner imports it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dsp_deploy.compare.latency_match import LatencyTarget, register_latency_targeted

METHOD = "dsp-latency"


def dsp_latency_pruner(
    source: str | Path,
    target: LatencyTarget,
    *,
    seed: int = 0,
    table: str | Path | None = None,
    runs: int = 15,
    min_seconds: float = 0.0,
    stat: str = "median",
    backend: str = "ort-cpu",
    threads: int = 1,
    measure: bool = True,
    corrections: int = 2,
    plan_cache: str | Path | None = None,
    plan_runs: int = 15,
    plan_batches: tuple[int, ...] | None = None,
) -> Any:
    """The DSP checkpoint ``source`` (group-learned) pruned to ``target`` (speedup over dense or ms at
    ``target.batch``, within ``target.tolerance`` as measured) by the latency table at ``table`` (measured
    there with ``runs`` when absent, default: the per-target cache) and, with ``measure``, up to
    ``corrections`` measured corrections (each timed for at least ``runs`` rounds and ``min_seconds``,
    judged by its ``stat``), its exports planned with ``plan_cache`` / ``plan_runs`` / ``plan_batches``
    (the run's: its own export of the result then lowers each block as the measured try did); returns
    the pruned Checkpoint (the caller measures it again, like every other model)."""
    from dsp_deploy.checkpoint import load_checkpoint
    from dsp_deploy.hardware.budget import LatencyGoal
    from dsp_deploy.training.latency_prune import LatencyOptions
    from dsp_deploy.training.prune import PruneOptions, prune_checkpoint

    goal = LatencyGoal(speedup=target.speedup) if target.speedup is not None else LatencyGoal(latency_ms=target.ms)
    latency = LatencyOptions(
        goal=goal,
        backend=backend,
        threads=threads,
        batch=target.batch,
        table=str(table) if table is not None else None,
        runs=runs,
        min_seconds=min_seconds,
        stat=stat,
        measure=measure,
        corrections=corrections,
        tolerance=target.tolerance,
        plan_cache=str(plan_cache) if plan_cache is not None else None,
        plan_runs=plan_runs,
        plan_batches=plan_batches,
    )
    with tempfile.TemporaryDirectory(prefix="dsp-latency-prune-") as tmp:
        out = Path(tmp) / "pruned.pt"
        prune_checkpoint(PruneOptions(str(source), str(out), None, seed=seed, progress=False, latency=latency))
        return load_checkpoint(out)


register_latency_targeted(METHOD, dsp_latency_pruner)
