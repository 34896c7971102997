"""The non-finite guard: a NaN or infinite loss must not move the weights, and must not cost a host
sync per step to notice.

A step whose loss is not finite (on any rank) has its update zeroed on the device and raises a flag;
the loop reads the flag only where it reads the losses back anyway, and then rolls back to the last
good checkpoint with the learning rate halved. After ``MAX_FAILURES`` rollbacks the run stops.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from pivf.core.kernel.errors import PivfUserError
from pivf.core.training.distributed import World, all_ranks_finite

__all__ = ["MAX_FAILURES", "NonFiniteGuard", "TrainingDiverged", "next_rollback"]

MAX_FAILURES = 3


class TrainingDiverged(PivfUserError):
    """Training kept producing non-finite values; the last good checkpoint is intact."""


class NonFiniteGuard:
    """Zeroes the update of a non-finite step and remembers, on the device, that one happened."""

    def __init__(self, device: torch.device) -> None:
        self._seen = torch.zeros((), dtype=torch.bool, device=device)
        self._zero = torch.zeros((), device=device)

    def screen(self, loss: Tensor, params: Sequence[Tensor], world: World) -> None:
        """After backward and the gradient all-reduce: a non-finite loss on any rank zeroes every gradient."""
        finite = all_ranks_finite(loss, world)
        self._seen |= ~finite
        for p in params:
            if p.grad is not None:
                torch.where(finite, p.grad, self._zero, out=p.grad)

    def tripped(self) -> bool:
        """Whether a step since the last reset was non-finite (a host sync: asked at read-backs only)."""
        return bool(self._seen)

    def reset(self) -> None:
        self._seen.zero_()


def next_rollback(failures: int, lr_scale: float, last: Path) -> tuple[int, float]:
    """(failures, learning-rate scale) after one more rollback to the checkpoint ``last``, or the stop."""
    failures += 1
    if failures > MAX_FAILURES:
        raise TrainingDiverged(f"training diverged (non-finite loss) {failures} times; stopped. The last good "
                               f"checkpoint is {last}; try a lower --lr")
    return failures, lr_scale * 0.5  # keeps halving even when several failures share a checkpoint
