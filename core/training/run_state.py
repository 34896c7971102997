"""How far a run has come: the counters every checkpoint carries, so that ``resume`` and a rollback
continue exactly where it was saved.

The counters sit at the top level of a checkpoint, under the names checkpoints have always used, so
older checkpoints load as they are (the keys added later have defaults).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["RunState"]


@dataclass
class RunState:
    """The counters of one run, and the validation history its metrics and verdict are made of."""

    epoch: int = 0  # epochs completed
    step: int = 0
    epoch_step: int = 0  # steps done in the current epoch (non-zero only when stopped on time)
    order: Tensor | None = None  # the current epoch's shuffle, once drawn
    best: float = math.inf  # the lowest validation loss, whose weights are checkpoint 'best'
    failures: int = 0  # rollbacks after a non-finite loss
    lr_scale: float = 1.0  # what the rollbacks left of the learning rate
    wall: float = 0.0  # seconds of training, across resumes
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation

    def checkpoint(self) -> dict[str, Any]:
        """The counters as a checkpoint holds them (the shuffle order on the CPU)."""
        return {"epoch": self.epoch, "step": self.step, "best": self.best, "failures": self.failures,
                "lr_scale": self.lr_scale, "wall": self.wall, "epoch_step": self.epoch_step,
                "order": None if self.order is None else self.order.cpu(), "history": self.history}

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], device: torch.device) -> RunState:
        return cls(epoch=state["epoch"], step=state["step"], best=state["best"], failures=state["failures"],
                   lr_scale=state["lr_scale"], wall=state["wall"], epoch_step=state.get("epoch_step", 0),
                   order=None if state.get("order") is None else state["order"].to(device),
                   history=state.get("history", []))

    def close_epoch(self, steps_per_epoch: int) -> None:
        """Count the epoch as done once all its steps are; a run stopped on time stays in the middle of it."""
        if self.epoch_step == steps_per_epoch:
            self.epoch, self.epoch_step, self.order = self.epoch + 1, 0, None
