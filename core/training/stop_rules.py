"""When a run stops: after its planned steps or epochs, when its time budget is spent, or at the
validation that meets a caller's target; ``StopRules.reason`` is what metrics.json records.

``training.max_time`` bounds the wall-clock time of the loop: the clock is read on the host after each
optimiser step (no device sync; under torchrun rank 0's clock decides at each read-back), and when it
runs out the run validates, checkpoints, evaluates and writes itself as at the last epoch.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pivf.core.kernel.config import TrainingConfig
from pivf.core.training.distributed import World, share_from_main
from pivf.core.training.run_state import RunState

__all__ = ["Clock", "RunPlan", "StopRules"]


@dataclass(frozen=True)
class RunPlan:
    """The run's shape: batch size per process and steps per epoch (the remainder of an epoch is dropped,
    as the original), and its length: ``training.steps`` whatever the dataset's size, else
    ``training.epochs`` passes over it."""

    batch_size: int
    steps_per_epoch: int
    steps: int
    epochs: int

    @classmethod
    def of(cls, tcfg: TrainingConfig, n_train: int, world: World) -> RunPlan:
        batch_size = min(tcfg.batch_size, n_train // world.size)
        steps_per_epoch = n_train // (batch_size * world.size)
        if tcfg.steps is None:
            return cls(batch_size, steps_per_epoch, tcfg.epochs * steps_per_epoch, tcfg.epochs)
        return cls(batch_size, steps_per_epoch, tcfg.steps, math.ceil(tcfg.steps / steps_per_epoch))


class Clock:
    """The loop's wall clock, going on from a resumed run's ``wall``, and the time budget from now."""

    def __init__(self, wall: float, max_time: float | None, world: World) -> None:
        self.started = time.perf_counter() - wall
        self.deadline = None if max_time is None else time.perf_counter() + max_time
        self.world = world

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self, read_back: bool) -> bool:
        """Whether the budget is spent: every step on one process (a host clock read, no device sync);
        under torchrun at read-backs only, by rank 0's clock, so all ranks stop at one step."""
        if self.deadline is None:
            return False
        if not self.world.active:
            return time.perf_counter() >= self.deadline
        return read_back and share_from_main(time.perf_counter() >= self.deadline, self.world)


class StopRules:
    """The run's plan and the caller's target (asked at each validation, e.g. a benchmark's success)."""

    def __init__(self, plan: RunPlan, tcfg: TrainingConfig,
                 target: Callable[[dict[str, Any]], bool] | None) -> None:
        self.plan, self.max_time, self.target = plan, tcfg.max_time, target
        self.reason = "epochs" if tcfg.steps is None else "steps"

    def going(self, state: RunState) -> bool:
        return state.epoch < self.plan.epochs and state.step < self.plan.steps

    def steps_done(self, state: RunState) -> bool:
        return state.step >= self.plan.steps

    def target_met(self, validation: dict[str, Any]) -> bool:
        return self.target is not None and bool(self.target(validation))

    def early_stop(self, state: RunState, out_of_time: bool, target_met: bool) -> str | None:
        """At an epoch's end: the line that says why the run stops before its plan's end (recorded in
        ``reason``), or None to go on."""
        if self.steps_done(state):
            return None
        if target_met:
            self.reason = "target"
            return f"stopped at step {state.step} after {state.wall:.0f} s: the validation met the caller's target"
        if out_of_time:
            self.reason = "max_time"
            return (f"stopped after {state.wall:.0f} s of training (training.max_time = {self.max_time:g} s), at step "
                    f"{state.step}/{self.plan.steps}, epoch {state.epoch + (state.epoch_step > 0)}/{self.plan.epochs}")
        return None
