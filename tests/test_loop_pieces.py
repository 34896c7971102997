"""The training loop's named pieces on their own: the non-finite guard, the run's counters as checkpoints
hold them, and the stop rules."""
from __future__ import annotations

import math

import pytest
import torch

from pivf.core.kernel.config import TrainingConfig
from pivf.core.training.distributed import World
from pivf.core.training.nonfinite import MAX_FAILURES, NonFiniteGuard, TrainingDiverged, next_rollback
from pivf.core.training.run_state import RunState
from pivf.core.training.stop_rules import RunPlan, StopRules


def test_a_non_finite_step_moves_no_weight_and_trips_the_guard_until_reset():
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    guard, optimizer = NonFiniteGuard(torch.device("cpu")), torch.optim.SGD([weight], lr=0.5)
    for scale, expected in ((1.0, [0.5, 1.0]), (math.nan, [0.5, 1.0])):
        optimizer.zero_grad()
        loss = (scale * weight.square()).sum() / 2  # gradient: scale * weight
        loss.backward()
        guard.screen(loss, [weight], World())
        optimizer.step()
        assert weight.tolist() == expected
    assert guard.tripped()
    guard.reset()
    assert not guard.tripped()


def test_each_rollback_halves_the_learning_rate_until_too_many_stop_the_run(tmp_path):
    failures, lr_scale = 0, 1.0
    for _ in range(MAX_FAILURES):
        failures, lr_scale = next_rollback(failures, lr_scale, tmp_path / "last.pt")
    assert (failures, lr_scale) == (3, 0.125)
    with pytest.raises(TrainingDiverged, match=r"diverged \(non-finite loss\) 4 times; .*last\.pt; try a lower --lr"):
        next_rollback(failures, lr_scale, tmp_path / "last.pt")


def test_the_counters_go_through_a_checkpoint_and_older_checkpoints_get_the_defaults():
    state = RunState(epoch=2, step=7, epoch_step=1, order=torch.tensor([2, 0, 1]), best=0.5, failures=1,
                     lr_scale=0.5, wall=3.25, history=[{"epoch": 2}])
    saved = state.checkpoint()
    assert set(saved) == {"epoch", "step", "epoch_step", "order", "best", "failures", "lr_scale", "wall", "history"}
    again = RunState.from_checkpoint(saved, torch.device("cpu"))
    assert again.order is not None and again.order.tolist() == [2, 0, 1]
    assert (again.epoch, again.step, again.epoch_step, again.best, again.wall, again.history) == (
        2, 7, 1, 0.5, 3.25, [{"epoch": 2}])
    older = {key: saved[key] for key in ("epoch", "step", "best", "failures", "lr_scale", "wall")}
    old = RunState.from_checkpoint(older, torch.device("cpu"))
    assert (old.epoch_step, old.order, old.history) == (0, None, [])


def test_an_epoch_counts_once_all_its_steps_are_done():
    state = RunState(epoch=1, epoch_step=3, order=torch.arange(4))
    state.close_epoch(steps_per_epoch=4)
    assert (state.epoch, state.epoch_step) == (1, 3) and state.order is not None
    state.epoch_step = 4
    state.close_epoch(steps_per_epoch=4)
    assert (state.epoch, state.epoch_step, state.order) == (2, 0, None)


def test_a_run_is_planned_in_steps_or_epochs_over_whole_batches():
    by_steps = RunPlan.of(TrainingConfig(batch_size=10, steps=5), n_train=25, world=World())
    assert (by_steps.batch_size, by_steps.steps_per_epoch, by_steps.steps, by_steps.epochs) == (10, 2, 5, 3)
    by_epochs = RunPlan.of(TrainingConfig(batch_size=10, steps=None, epochs=4), n_train=25, world=World(size=2))
    assert (by_epochs.batch_size, by_epochs.steps_per_epoch, by_epochs.steps, by_epochs.epochs) == (10, 1, 4, 4)


def test_the_stop_rules_name_why_a_run_ended_early():
    tcfg = TrainingConfig(batch_size=10, steps=10, max_time=60.0)
    rules = StopRules(RunPlan.of(tcfg, n_train=20, world=World()), tcfg, target=lambda point: point["step"] >= 4)
    state = RunState(epoch=2, step=4, wall=12.0)
    assert rules.going(state) and rules.reason == "steps"
    assert rules.target_met({"step": 4}) and not rules.target_met({"step": 2})
    assert rules.early_stop(state, out_of_time=False, target_met=False) is None
    line = rules.early_stop(state, out_of_time=True, target_met=False)
    assert (rules.reason, line) == ("max_time", "stopped after 12 s of training (training.max_time = 60 s), "
                                                "at step 4/10, epoch 2/5")
    line = rules.early_stop(state, out_of_time=True, target_met=True)
    assert (rules.reason, line) == ("target", "stopped at step 4 after 12 s: the validation met the caller's target")
    state.step = 10
    assert not rules.going(state) and rules.early_stop(state, out_of_time=True, target_met=True) is None
