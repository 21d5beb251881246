"""Process-group set-up for `torchrun --nproc_per_node N` (gloo on CPU, nccl on GPU) and the
few collectives the training stages need. A plain (non-torchrun) run is world size 1 and every
helper is a no-op, so the same code serves both."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dsp_deploy.errors import TrainingError, UsageError

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Rank, world size and device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -- collectives (no-ops for one process) ---------------------------------------------------
    def average_(self, tensors: Sequence[torch.Tensor | None]) -> None:
        """All-reduce ``tensors`` in place to their mean over ranks."""
        present = [t for t in tensors if t is not None]
        if not self.distributed or not present:
            return
        import torch.distributed as dist

        flat = torch.cat([t.reshape(-1) for t in present])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in present:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def sum(self, values: Iterable[float]) -> list[float]:
        """Sum a few scalars over ranks (metrics: correct counts, loss sums, sample counts)."""
        values = [float(v) for v in values]
        if not self.distributed:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def broadcast_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite ``tensors`` on every rank with rank 0's values."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.broadcast(t, src=0)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def _pick_device(requested: str, local_rank: int) -> torch.device:
    if requested not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, not '{requested}'")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group if this process was started by torchrun.

    Reads the torchrun variables (WORLD_SIZE, LOCAL_RANK) at call time.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, 0, dev)
    import torch.distributed as dist

    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend)
    except Exception as exc:  # noqa: BLE001 - rendezvous failures: one line, not a traceback
        raise TrainingError(f"cannot join the torchrun process group ({backend}): {exc}") from None
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, initialized_here=True)
    if ctx.is_main:
        log.info("distributed: %d processes, backend %s", ctx.world_size, backend)
    return ctx


def shutdown(ctx: DistContext) -> None:
    """Leave the process group this module joined."""
    if ctx.initialized_here:
        import gc

        import torch.distributed as dist

        if dist.is_initialized():
            gc.collect()  # drop DistributedDataParallel wrappers before their process group goes
            try:
                dist.barrier()  # no rank may tear down gloo while another still talks to it
            finally:
                dist.destroy_process_group()
