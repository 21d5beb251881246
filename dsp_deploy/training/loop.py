"""The training loop shared by dense training, group learning and fine-tuning.

SGD with momentum and a per-step cosine learning rate, DistributedDataParallel when torchrun
started several processes, a hook that runs after every optimizer step (group learning or
mask enforcement), metrics reduced over ranks, a tqdm bar on rank 0, and a resumable state
saved at the end of every epoch (and every ``checkpoint_every`` steps if set).
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from dsp_deploy.errors import TrainingError
from dsp_deploy.training.distributed import DistContext
from dsp_deploy.training.metrics import MetricsLog

log = logging.getLogger(__name__)


@dataclass
class LoopConfig:
    """Optimisation settings of one stage."""

    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    iterations: int | None = None  # total optimizer steps; overrides epochs when set
    warmup_epochs: float = 0.0      # linear warm-up before the cosine (not in the paper; the demo uses it)
    checkpoint_every: int = 0       # extra mid-epoch saves every N steps (0: end of epoch only)
    log_every: int = 10
    progress: bool = True
    eval_each_epoch: bool = True    # evaluate after every epoch (always after the last)
    stage: str = "train"


class StepHook(Protocol):
    """What a stage plugs into the loop."""

    def before_step(self, model: nn.Module) -> None: ...
    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class NoHook:
    """Plain training."""

    def before_step(self, model: nn.Module) -> None:
        return None

    def after_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                   step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def cosine_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Cosine annealing from ``base`` to 0 over ``total`` steps, after ``warmup`` linear steps."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step - warmup, total - warmup) / max(1, total - warmup)))


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, ctx: DistContext) -> dict[str, float]:
    """Top-1 accuracy (%) and mean loss over ``loader``, summed over ranks."""
    was_training = model.training
    model.eval()
    correct = total = loss_sum = 0.0
    for images, labels in loader:
        images, labels = images.to(ctx.device, non_blocking=True), labels.to(ctx.device, non_blocking=True)
        outputs = model(images)
        loss_sum += float(nn.functional.cross_entropy(outputs, labels, reduction="sum"))
        correct += float((outputs.argmax(dim=1) == labels).sum())
        total += labels.numel()
    correct, total, loss_sum = ctx.sum([correct, total, loss_sum])
    model.train(was_training)
    if not total:
        raise TrainingError("the evaluation split is empty")
    return {"accuracy": 100.0 * correct / total, "loss": loss_sum / total, "samples": int(total)}


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


class Trainer:
    """Runs one stage; ``save(state, final)`` persists (rank 0 only) what `resume` needs."""

    def __init__(self, model: nn.Module, ctx: DistContext, train_loader: Any, val_loader: Any, config: LoopConfig,
                 *, hook: StepHook | None = None, save: Callable[[dict[str, Any], bool], None] | None = None,
                 metrics: MetricsLog | None = None) -> None:
        self.model = model.to(ctx.device)
        self.ctx = ctx
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.config = config
        self.hook = hook or NoHook()
        self.save = save
        self.metrics = metrics or MetricsLog(None)
        self.steps_per_epoch = len(train_loader)
        if self.steps_per_epoch == 0:
            raise TrainingError("the training split gives no batch (fewer samples than the batch size?)")
        self.total_steps = config.iterations or config.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.warmup_steps = min(self.total_steps - 1, round(config.warmup_epochs * self.steps_per_epoch))
        self.wrapped = self._wrap(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.criterion = nn.CrossEntropyLoss()
        self.global_step = 0
        self.epoch = 0          # epochs completed
        self.step_in_epoch = 0  # batches of the current epoch already done (mid-epoch resume)
        self.last_val: dict[str, float] | None = None

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.ctx.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    # -- resume -----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "total_steps": self.total_steps, "optimizer": self.optimizer.state_dict(),
                "hook": self.hook.state_dict(), "rng": rng_state()}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a state written by `state` (same stage settings)."""
        if int(state.get("total_steps", -1)) != self.total_steps:
            raise TrainingError(f"cannot resume: the saved run has {state.get('total_steps')} steps in total but "
                                f"these settings give {self.total_steps} (same epochs, batch size and data needed)")
        self.optimizer.load_state_dict(state["optimizer"])
        self.hook.load_state_dict(state["hook"])
        set_rng_state(state["rng"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        log.info("resuming %s at epoch %d, step %d of %d", self.config.stage, self.epoch + 1, self.global_step,
                 self.total_steps)

    def _checkpoint(self, final: bool) -> None:
        if self.save is not None and self.ctx.is_main:
            self.save(self.state(), final)
        self.metrics.flush()
        self.ctx.barrier()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to the end; returns the final evaluation and timing."""
        from tqdm import tqdm

        cfg = self.config
        bar = tqdm(total=self.total_steps, initial=self.global_step, desc=cfg.stage, unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and self.ctx.is_main), leave=False)
        started = time.time()
        self.wrapped.train()
        while self.global_step < self.total_steps:
            epoch_start = time.time()
            sums = [0.0, 0.0, 0.0]  # loss sum, correct, samples (this rank)
            self.train_loader.set_epoch(self.epoch)
            skip = self.step_in_epoch
            for index, (images, labels) in enumerate(self.train_loader):
                if index < skip:
                    continue
                if self.global_step >= self.total_steps:
                    break
                stats = self._step(images, labels, sums)
                self.global_step += 1
                self.step_in_epoch = index + 1
                bar.update(1)
                if self.global_step % cfg.log_every == 0 or self.global_step == self.total_steps:
                    stats["loss"] = self.ctx.sum([stats["loss"]])[0] / self.ctx.world_size  # mean over ranks
                    bar.set_postfix_str(f"loss {stats['loss']:.3f} lr {stats['lr']:.4f}")
                    self.metrics.log("step", stage=cfg.stage, epoch=self.epoch + 1, step=self.global_step, **stats)
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 \
                        and self.step_in_epoch < self.steps_per_epoch:
                    self._checkpoint(final=False)
            self._end_epoch(sums, epoch_start)
        bar.close()
        result = self.last_val or evaluate(self.wrapped, self.val_loader, self.ctx)
        self.metrics.log("final", stage=cfg.stage, val_accuracy=result["accuracy"], val_loss=result["loss"],
                         train_time_s=round(time.time() - started, 2))
        self._checkpoint(final=True)
        self.wrapped = self.model  # release the DDP wrapper (and its hooks) before the process group ends
        return {"val_accuracy": result["accuracy"], "val_loss": result["loss"], "epochs": self.epochs,
                "steps": self.total_steps, "time_s": time.time() - started}

    def _step(self, images: torch.Tensor, labels: torch.Tensor, sums: list[float]) -> dict[str, float]:
        images = images.to(self.ctx.device, non_blocking=True)
        labels = labels.to(self.ctx.device, non_blocking=True)
        lr = cosine_lr(self.config.lr, self.global_step, self.total_steps, self.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        outputs = self.wrapped(images)
        loss = self.criterion(outputs, labels)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {float(loss)} at step {self.global_step + 1} "
                                "(learning rate or regularization too large?)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.hook.before_step(self.model)
        self.optimizer.step()
        extra = self.hook.after_step(self.model, images, labels, lr, self.global_step)
        sums[0] += float(loss.detach()) * labels.numel()
        sums[1] += float((outputs.detach().argmax(dim=1) == labels).sum())
        sums[2] += labels.numel()
        return {"loss": float(loss.detach()), "lr": lr, **extra}

    def _end_epoch(self, sums: list[float], started: float) -> None:
        loss_sum, correct, seen = self.ctx.sum(sums)
        last = self.global_step >= self.total_steps
        val = evaluate(self.wrapped, self.val_loader, self.ctx) if (last or self.config.eval_each_epoch) else None
        self.last_val = val if last else None
        self.epoch += 1
        self.step_in_epoch = 0
        fields = {"val_accuracy": val["accuracy"], "val_loss": val["loss"]} if val else {}
        self.metrics.log("epoch", stage=self.config.stage, epoch=self.epoch, step=self.global_step,
                         train_loss=loss_sum / max(seen, 1), train_accuracy=100.0 * correct / max(seen, 1),
                         time_s=round(time.time() - started, 2), **fields)
        if self.ctx.is_main:
            log.info("%s epoch %d/%d: train loss %.4f%s", self.config.stage, self.epoch, self.epochs,
                     loss_sum / max(seen, 1), f", val accuracy {val['accuracy']:.2f}%" if val else "")
        if self.global_step < self.total_steps:
            self._checkpoint(final=False)
