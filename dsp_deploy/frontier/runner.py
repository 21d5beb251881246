"""Train, prune, latency-match and measure every model of an accuracy-at-latency run, with a cache.

Per model and seed: a dense model, then per method its stage 1 (DSP group learning once per G; L1 the
dense model; PFS/SCP a search at the budget's FLOPs target), then per budget the pruned structure (a
FLOPs target, or the ratio whose measured latency matches the speedup budget, found by
``compare.latency_match``) and its final training. Every stage's output lives under
``cache/<settings key>/<model>/s<seed>/`` and a finished model leaves ``result.json`` there: a rerun
after an interruption skips whatever is done (a torn result file is redone).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dsp_deploy.frontier.latency_dsp  # noqa: F401  (registers the "dsp-latency" pruner)
from dsp_deploy.frontier.settings import LABELS, LATENCY_TARGETED, SHAPED, SKIPPED, RunSettings
from dsp_deploy.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

RESULT_FORMAT = "dsp-deploy/accuracy-latency-model"
FINAL_SECTION = {"dsp": "finetune", "l1": "finetune", "pfs": "scratch", "scp": "scp_finetune"}


def cached_result(path: Path, produce: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(result, True) from ``path`` when a complete one is there, else ``produce()`` written atomically
    and (result, False). A file that is not a complete result (torn, other format) is produced again."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("format") == RESULT_FORMAT and "row" in data:
            return data["row"], True
    except (OSError, ValueError):
        pass
    row = produce()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"format": RESULT_FORMAT, "format_version": 1, "row": row}, indent=1))
    return row, False


def fingerprint() -> dict[str, str]:
    """CPU model and ISA of this machine: results from different fingerprints are not comparable."""
    from dsp_deploy.bench.machine import cpu_isa, cpu_model

    return {"cpu": cpu_model(), "isa": cpu_isa()}


@dataclass
class Runner:
    settings: RunSettings
    cache: Path
    progress: bool = False

    def folder(self, model: str, seed: int) -> Path:
        return self.cache / self.settings.key() / model / f"s{seed}"

    # --- training stages (each skipped when its finished output exists) -----------------------------------
    def _loop(self, epochs: int, lr: float, warmup: float = 0.0) -> dict[str, Any]:
        return {"epochs": epochs, "lr": lr, "momentum": 0.9, "weight_decay": 5e-4, "warmup_epochs": warmup}

    def _data(self) -> dict[str, Any]:
        return {"batch_size": self.settings.batch_size, "workers": 0}

    def _train(
        self, out: Path, model: str, seed: int, overrides: dict[str, Any], *, dense: bool, init: str | None = None
    ) -> Path:
        from dsp_deploy.checkpoint import load_checkpoint
        from dsp_deploy.training.learn import TrainOptions, run_train

        ckpt = out / "checkpoint.pt"
        if ckpt.exists() and load_checkpoint(ckpt).extra.get("complete"):
            return ckpt
        run_train(
            TrainOptions(
                data=self.settings.data,
                out=str(out),
                model=model,
                dense=dense,
                init=init,
                overrides=overrides,
                data_overrides=self._data(),
                seed=seed,
                device="cpu",
                resume=ckpt.exists(),
                progress=self.progress,
                eval_each_epoch=False,
            )
        )
        return ckpt

    def dense(self, model: str, seed: int) -> Path:
        s = self.settings
        return self._train(
            self.folder(model, seed) / "dense",
            model,
            seed,
            self._loop(s.dense_epochs, s.lr, warmup=min(1.0, s.dense_epochs / 4)),
            dense=True,
        )

    def stage1(self, method: str, model: str, seed: int, reduction: float) -> Path:
        """The checkpoint a method prunes from (PFS/SCP: searched at ``reduction``; a latency-targeted
        or shaped method: the DSP group-learning checkpoint of G = ``latency_groups``, shared with dsp-g<G>)."""
        s, base = self.settings, self.folder(model, seed)
        if method in LATENCY_TARGETED or method in SHAPED:
            method = f"dsp-g{s.latency_groups}"
        if method == "l1":
            return self.dense(model, seed)
        if method.startswith("dsp-g"):
            groups = int(method[len("dsp-g") :])
            overrides = dict(self._loop(s.search_epochs, s.stage_lr), groups=groups, tau=s.tau, **{"lambda": s.lam})
            return self._train(
                base / method / "search", model, seed, overrides, dense=False, init=str(self.dense(model, seed))
            )
        from dsp_deploy.checkpoint import load_checkpoint
        from dsp_deploy.training.search import SearchOptions, run_search

        if s.shared_search:  # quick runs: one search per method, at the middle budget's FLOPs
            reduction = 1.0 - 1.0 / s.speedups[len(s.speedups) // 2]
        out = base / method / f"search-r{reduction:.3f}"
        ckpt = out / "checkpoint.pt"
        if ckpt.exists() and load_checkpoint(ckpt).extra.get("complete"):
            return ckpt
        run_search(
            SearchOptions(
                method=method,
                data=s.data,
                out=str(out),
                model=model,
                flops_reduction=reduction,
                flops_metric="total",
                overrides={"epochs": s.search_epochs},
                data_overrides=self._data(),
                seed=seed,
                device="cpu",
                resume=ckpt.exists(),
                progress=self.progress,
            )
        )
        return ckpt

    def prune(self, method: str, source: Path, ratio: float, seed: int) -> Any:
        """The pruned checkpoint of ``method`` at a whole-model FLOPs reduction ``ratio`` (no training)."""
        from dsp_deploy.checkpoint import load_checkpoint

        if method.startswith("dsp-g") or method in SHAPED:
            from dsp_deploy.training.dsp_prune import DSPPruneOptions, prune_dsp

            ckpt = load_checkpoint(source)
            options = DSPPruneOptions(flops_reduction=ratio, flops_metric="total", seed=seed,
                                      hardware=self.shaped_for(ckpt.model) if method in SHAPED else None)
            return prune_dsp(ckpt, options, source=str(source)).checkpoint
        from dsp_deploy.training.search import prune_channels

        return prune_channels(method, source, ratio, "total", seed=seed, prune_streams=False)

    def shaped_for(self, model: str) -> Any:
        """The target a shaped method prunes for: ONNX Runtime CPU, 1 thread, the match batch (its latency
        table kept with the run's)."""
        from dsp_deploy.training.hardware_prune import HardwareTarget

        batch = self.settings.match_batch
        table = self.latency_table(model, batch)
        table.parent.mkdir(parents=True, exist_ok=True)
        return HardwareTarget(batch=batch, table=str(table))

    def latency_table(self, model: str, batch: int) -> Path:
        """Where the run keeps ``model``'s latency table at ``batch`` (measured once, reused on resume)."""
        return self.cache / self.settings.key() / "latency-tables" / f"{model}-b{batch}.json"

    def plan_cache(self) -> Path:
        """The exporter's block timings, shared by every export of the run (same blocks: same lowering)."""
        return self.cache / self.settings.key() / "plan-cache.json"

    def prune_to_latency(self, method: str, source: Path, model: str, target: Any, seed: int) -> Any:
        """A latency-targeted method's checkpoint pruned straight to ``target`` (a LatencyTarget), once."""
        from dsp_deploy.compare.latency_match import latency_targeted
        from dsp_deploy.errors import BenchError

        fn, reason = latency_targeted(method)
        if fn is None:
            raise BenchError(reason)  # skip_reason() keeps unregistered methods from getting here
        table = self.latency_table(model, target.batch)
        table.parent.mkdir(parents=True, exist_ok=True)
        s = self.settings  # as many measured tries as a latency match; planned as the run's exports are
        # the run times the result again, independently of the try the pruner accepted: aiming inside half
        # the tolerance keeps that second measurement's noise from pushing a borderline try out of it
        aim = replace(target, tolerance=target.tolerance / 2)
        return fn(source, aim, seed=seed, table=table, runs=s.runs, min_seconds=s.min_seconds, stat=s.stat,
                  corrections=s.match_steps - 1,
                  plan_cache=self.plan_cache(), plan_runs=s.plan_runs,
                  plan_batches=tuple(s.plan_batches or s.batches))

    def final(self, method: str, pruned: Any, out: Path, seed: int) -> Path:
        """Stage 3 (fine-tuning, or PFS's training from scratch) of ``pruned``; skipped when done."""
        from dsp_deploy.checkpoint import save_checkpoint
        from dsp_deploy.training.finetune import FinetuneOptions, run_finetune, side_files

        s = self.settings
        final = out / "final.pt"
        if final.exists():
            return final
        family = "dsp" if method.startswith("dsp") else method
        epochs = (
            s.final_epochs
            + (s.search_epochs if family == "l1" else 0)
            + (s.dense_epochs if family in ("pfs", "scp") else 0)
        )
        lr = s.lr if family == "pfs" else s.stage_lr
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "pruned.pt").exists():
            save_checkpoint(out / "pruned.pt", pruned)
        run_finetune(
            FinetuneOptions(
                checkpoint=str(out / "pruned.pt"),
                data=s.data,
                out=str(final),
                section=FINAL_SECTION[family],
                overrides=self._loop(epochs, lr),
                data_overrides=self._data(),
                seed=seed,
                device="cpu",
                resume=side_files(str(final))[0].exists(),
                progress=self.progress,
                eval_each_epoch=False,
            )
        )
        return final

    def test_accuracy(self, checkpoint: Path) -> float:
        """Top-1 (%) on the test split (its first ``test_limit`` images in quick runs)."""
        import torch

        from dsp_deploy.checkpoint import build_model, load_checkpoint
        from dsp_deploy.data import build_dataset, build_loader
        from dsp_deploy.training.distributed import DistContext
        from dsp_deploy.training.loop import evaluate

        test = build_dataset(self.settings.data, "test", augment=False, seed=0)
        if self.settings.test_limit is not None and self.settings.test_limit < len(test):
            test = torch.utils.data.Subset(test, range(self.settings.test_limit))
        loader = build_loader(test, 500, shuffle=False, workers=0, distributed=False, seed=0, drop_last=False)
        return float(evaluate(build_model(load_checkpoint(checkpoint)), loader, DistContext())["accuracy"])


def row_base(model: str, method: str, seed: int, kind: str, speedup: float | None) -> dict[str, Any]:
    return {
        "model": model,
        "method": method,
        "label": LABELS.get(method, method),
        "seed": seed,
        "budget_kind": kind,
        "budget": speedup,
        "status": "ok",
        "reason": "",
    }


def skipped_rows(
    model: str,
    seed: int,
    settings: RunSettings,
    method: str,
    reason: str,
    kinds: tuple[str, ...] = ("latency", "flops"),
) -> list[dict[str, Any]]:
    rows = []
    for kind in kinds:
        for speedup in settings.speedups:
            row = row_base(model, method, seed, kind, speedup)
            row.update(status="skipped", reason=reason)
            rows.append(row)
    return rows


def skip_reason(method: str) -> str | None:
    """Why ``method`` cannot run in this build, or None."""
    if method in LATENCY_TARGETED:
        from dsp_deploy.compare.latency_match import latency_targeted

        fn, reason = latency_targeted(method)
        return None if fn is not None else reason
    return SKIPPED.get(method)


def fmt_ms(values: dict[Any, float]) -> dict[str, float]:
    return {str(k): round(float(v), 5) for k, v in values.items()}
