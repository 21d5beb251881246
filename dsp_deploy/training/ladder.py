"""The channel-multiple ladder: a structure search tried at the target's alignment first, then at its
halves, until one reaches its goal. Shared by the latency-targeted search (`latency_prune`) and the
shaped FLOPs-targeted prune (`hardware_prune`), so both record and refuse alike: which multiples were
tried, what each gave, and, where none reached the goal, one line naming them."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from dsp_deploy.errors import TrainingError

log = logging.getLogger(__name__)

T = TypeVar("T")

MIN_MULTIPLE = 4
"""The finest alignment the ladder goes down to: a 128-bit register of floats (SSE/NEON)."""


def alignment_ladder(native: int, explicit: bool) -> list[int]:
    """The channel multiples to try, coarsest first: the target's alignment, then its halves down to
    `MIN_MULTIPLE` (an explicit ``--channel-multiple`` is the only one tried). A coarse alignment can put
    a goal out of reach on narrow layers (16 on ResNet-20's 16-channel layers with G=4 prunes no input
    channel), where a finer one reaches it."""
    ladder = [native]
    while not explicit and ladder[-1] % 2 == 0 and ladder[-1] // 2 >= MIN_MULTIPLE:
        ladder.append(ladder[-1] // 2)
    return ladder


class LadderTrials:
    """What each multiple of a walk down the ladder gave (``tried``: the record's ``alignment_tried``)."""

    def __init__(self) -> None:
        self.tried: list[dict[str, Any]] = []
        self.error: TrainingError | None = None

    def attempt(self, multiple: int, search: Callable[[int], T]) -> T | None:
        """``search(multiple)``, or None (the refusal kept) where it raises TrainingError."""
        try:
            return search(multiple)
        except TrainingError as exc:
            self.error = exc
            self.tried.append({"channel_multiple": multiple, "outcome": str(exc)})
            log.info("channel multiple %d: %s", multiple, exc)
            return None

    def reached(self, multiple: int, outcome: str) -> None:
        self.tried.append({"channel_multiple": multiple, "outcome": outcome})

    @property
    def relaxed(self) -> bool:
        """More than one multiple was tried (the record then says what each gave)."""
        return len(self.tried) > 1

    def refusal(self, context: str = "") -> TrainingError:
        """One line for a walk where no multiple reached the goal: the last refusal (its figure is at
        the finest multiple tried), the multiples tried, and ``context`` (e.g. the target's rules)."""
        assert self.error is not None and self.tried, "a refusal needs a refused attempt"
        last = self.tried[-1]["channel_multiple"]
        multiples = ", ".join(str(t["channel_multiple"]) for t in self.tried)
        walked = f" (channel multiples tried: {multiples})" if self.relaxed else ""
        return TrainingError(f"{self.error} at channel multiple {last}{walked}{' ' + context if context else ''}")
