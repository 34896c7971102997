"""The training loop, top to bottom: ``Trainer.fit`` reads as the script of a run; its named pieces
are ``RunState`` (how far the run has come), ``NonFiniteGuard`` (a NaN must not move the weights),
``StopRules`` (steps, epochs, time budget, a caller's target) and ``RunningMeans`` / ``TensorBoard``
(what the run records).

Performance habits: the dataset stays on the device as uint8 and batches are indexed there; nothing
inside a step reads a value back to the host (losses and the non-finite flag are accumulated as
tensors and read every ``log_every`` steps); the original loss is kept exactly, so its thresholds
keep their meaning.

Robustness: checkpoints (model, optimiser, objective state, RNG states, the run's counters) are
written atomically, and only when every weight is finite, so a good checkpoint is never replaced by a
bad one. A non-finite loss is neutralised in the step it happens and, at the next read-back, the run
rolls back to the last good checkpoint with the learning rate halved. ``resume`` continues a run
exactly, also from the middle of an epoch (the epoch's shuffle order is in the checkpoint).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.data.provenance import record_dataset
from pivf.core.kernel.atomic import atomic_torch_save
from pivf.core.kernel.build import build_objective, build_pipeline, open_dataset
from pivf.core.kernel.config import ExperimentConfig, TrainingConfig
from pivf.core.kernel.errors import ConfigError, PivfUserError
from pivf.core.kernel.plugin import format_validation_error
from pivf.core.training.checkpoints import check_shuffle_order, checkpoint_path, load_checkpoint, restoring
from pivf.core.training.devices import describe_device, resolve_device
from pivf.core.training.distributed import (
    average_gradients,
    barrier,
    broadcast_parameters,
    init_world,
    local_device_name,
    ranks_in_sync,
    share_from_main,
    shutdown,
)
from pivf.core.training.nonfinite import MAX_FAILURES, NonFiniteGuard, next_rollback
from pivf.core.training.optim import make_optimizer
from pivf.core.training.progress import Progress
from pivf.core.training.report import parameter_report, physical_line, recording_report, save_figures
from pivf.core.training.run_log import RunningMeans, TensorBoard
from pivf.core.training.run_state import RunState
from pivf.core.training.runs import (
    load_run_config,
    lock_run,
    new_run_dir,
    unlock_run,
    with_dataset_sizes,
    write_config,
    write_metrics,
)
from pivf.core.training.stop_rules import Clock, RunPlan, StopRules
from pivf.core.training.verdict import verdict

__all__ = ["Log", "RESUME_CHANGES", "Trainer", "resume", "train"]

Log = Callable[[str], None]
#: training frames handed to ``Pipeline.prepare`` before the first step
PREPARE_FRAMES = 2048


class Trainer:
    """One run: builds everything from the config, then ``fit`` trains, evaluates and writes the run."""

    def __init__(self, config: ExperimentConfig, log: Log = print, run_dir: Path | None = None,
                 quiet: bool = False, overwrite: bool = False,
                 stop_when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        tcfg = config.training
        self.world = init_world(tcfg.device)
        self.device = resolve_device(local_device_name(self.world, tcfg.device))
        self.log = log if self.world.is_main else (lambda _msg: None)
        torch.manual_seed(tcfg.seed)
        self.data = open_dataset(config, self.log).to(self.device)
        self.config = config = with_dataset_sizes(config, self.data)
        self.stop = StopRules(RunPlan.of(tcfg, len(self.data.train), self.world), tcfg, stop_when)
        self.pipeline = build_pipeline(config).to(self.device)
        if tcfg.compile:
            self.pipeline.compile_vision("default" if tcfg.compile is True else tcfg.compile)
        self.objective = build_objective(config)
        self.params = [p for p in self.pipeline.parameters() if p.requires_grad]
        broadcast_parameters(self.params, self.world)
        self.optimizer = make_optimizer(tcfg.optimizer, self.param_groups(), tcfg.lr)
        self.generator = torch.Generator(device=self.device).manual_seed(tcfg.seed)
        self.run_dir = share_from_main(
            run_dir or (new_run_dir(config, overwrite) if self.world.is_main else None), self.world)
        if run_dir is None and self.world.is_main:  # what a new run trains on, for evaluate to check
            record_dataset(self.run_dir, self.data)
        self.state = RunState()
        self.guard = NonFiniteGuard(self.device)
        self.running = RunningMeans()
        self.progress = Progress(self.stop.plan.steps, self.log, enabled=not quiet and self.world.is_main)

    # --- the loop ------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train until a stop rule says so, then evaluate on the test split and write the run."""
        self._begin()
        while self.stop.going(self.state):
            diverged, out_of_time = self._train_epoch()
            if diverged or not self.weights_finite():
                self.roll_back()
                continue
            self.state.close_epoch(self.stop.plan.steps_per_epoch)
            self.state.wall = self.clock.elapsed()
            target_met = self._end_of_epoch(stopping=out_of_time or self.stop.steps_done(self.state))
            why = self.stop.early_stop(self.state, out_of_time, target_met)
            if why is not None:
                self.log(why)
                break
        return self._finish()

    def _begin(self) -> None:
        """TensorBoard opened; a new run prepared and checkpointed (the state every rollback can return to);
        the clock started."""
        cfg, n_train = self.config, len(self.data.train)
        self.board = TensorBoard(self.run_dir, self.state.step, self.world.is_main and cfg.logging.tensorboard)
        if self.state.epoch == 0 and self.state.step == 0:  # a new run; a resumed one has this in its checkpoint
            self.pipeline.prepare(as_float(self.data.train[: max(1, PREPARE_FRAMES // self.data.train.shape[1])]))
            self.save("last")
        self.log(f"training {cfg.physics.name}+{cfg.integrator.name} on {cfg.data.task} ({n_train} sequences, "
                 f"{self.stop.plan.steps} steps, {describe_device(self.device)}"
                 f"{f', {self.world.size} processes' if self.world.active else ''}) → {self.run_dir}")
        self.clock = Clock(self.state.wall, cfg.training.max_time, self.world)

    def _train_epoch(self) -> tuple[bool, bool]:
        """The epoch's steps from where it stands to its end, or to where the run's steps or time run out:
        (diverged, out of time). The losses and the non-finite flag are read back every ``log_every`` steps."""
        plan, state = self.stop.plan, self.state
        self._set_learning_rates()
        shard = self._shard()
        for i in range(state.epoch_step, plan.steps_per_epoch):
            self.running.add(self._step(shard[i * plan.batch_size:(i + 1) * plan.batch_size]))
            state.epoch_step = i + 1
            read_back = state.step % self.config.logging.log_every == 0 or i == plan.steps_per_epoch - 1
            out_of_time = self.clock.out_of_time(read_back)
            ending = out_of_time or self.stop.steps_done(state)
            if read_back or ending:
                if self.guard.tripped():
                    return True, False
                self._record_training()
            if ending:
                return False, out_of_time
        return False, False

    def _set_learning_rates(self) -> None:
        """Each group's ``base_lr``, scaled by the rollbacks and annealed once the run is ``anneal_at`` of the
        way through its steps or its time budget."""
        tcfg, state = self.config.training, self.state
        progress = state.step / max(self.stop.plan.steps, 1)
        if tcfg.max_time is not None:
            progress = max(progress, state.wall / tcfg.max_time)
        annealed = progress >= tcfg.anneal_at and state.step > 0
        factor = state.lr_scale * (tcfg.anneal_factor if annealed else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    def _shard(self) -> Tensor:
        """This process's share of the epoch's shuffle, drawn at the epoch's first step (a resumed epoch
        keeps the order it began with)."""
        if self.state.order is None:
            self.state.order = torch.randperm(len(self.data.train), device=self.device, generator=self.generator)
        return self.state.order[self.world.rank::self.world.size]

    def _step(self, rows: Tensor) -> dict[str, Tensor]:
        """One optimiser step on the training sequences ``rows``; a non-finite one leaves the weights as they were."""
        objective, pipeline, grad_clip = self.objective, self.pipeline, self.config.training.grad_clip
        batch = as_float(self.data.train[rows, : objective.train_length])
        losses = objective.training_losses(pipeline, batch, self.state.step,
                                           **objective.batch_controls(self.data.train_controls, rows))
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        average_gradients(self.params, self.world)
        self.guard.screen(losses["loss"], self.params, self.world)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_value_(self.params, grad_clip)
        self.optimizer.step()
        self.state.step += 1
        self.after_step()
        return losses

    def after_step(self) -> None:
        """The objective's check after a step; a re-initialised part restarts the optimiser's moments
        (under torchrun rank 0 decides and its weights are broadcast)."""
        reinitialised, messages = self.objective.after_step(self.pipeline, self.state.step)
        for message in messages:
            self.progress.message(message)
        if self.world.active:
            reinitialised = share_from_main(reinitialised, self.world)
            if reinitialised:
                broadcast_parameters(self.params, self.world)
        if reinitialised:
            self.optimizer.state.clear()

    def _record_training(self) -> None:
        """At a read-back: the mean losses, the learned parameters and the speed, to TensorBoard and the
        progress line."""
        step, values = self.state.step, self.running.read()
        self.board.scalars("train", values, step)
        self.board.scalars("param", self.pipeline.physics.learned_parameters(), step)
        self.board.scalars("perf", {"lr": self.optimizer.param_groups[0]["lr"],
                                    "samples_per_s": step * self.stop.plan.batch_size * self.world.size
                                    / max(self.clock.elapsed(), 1e-9)}, step)
        self.progress.update(step, self.state.epoch + 1, values)

    def roll_back(self) -> None:
        """Return to the last good checkpoint with a halved learning rate, or stop."""
        self.guard.reset()
        self.running.reset()
        failures, lr_scale = next_rollback(self.state.failures, self.state.lr_scale, self.checkpoint_path("last"))
        self.load_state(load_checkpoint(self.checkpoint_path("last")))
        self.state.failures, self.state.lr_scale = failures, lr_scale
        self.log(f"non-finite loss: rolled back to epoch {self.state.epoch}, learning rate ×{lr_scale:g} "
                 f"(failure {failures}/{MAX_FAILURES})")

    def _end_of_epoch(self, stopping: bool) -> bool:
        """Validation and checkpoints at an epoch's end, all of them where the run stops; whether the
        validation met the caller's target."""
        state, epochs = self.state, self.stop.plan.epochs
        last = stopping or state.epoch == epochs
        boundary = state.epoch_step == 0
        target_met = False
        if last or (boundary and state.epoch % self.config.training.eval_every == 0):
            target_met = self._validate()
        if last or (boundary and state.epoch % self.config.logging.checkpoint_every == 0):
            self.save("last")
        return target_met

    def _validate(self) -> bool:
        """The validation losses recorded and shown, checkpoint 'best' where they are the lowest yet;
        whether they met the caller's target."""
        state, objective = self.state, self.objective
        valid = objective.evaluate(self.pipeline, self.data.valid[:, : objective.train_length],
                                   self.stop.plan.batch_size, self.data.valid_controls)
        self.board.scalars("valid", valid, state.step)
        state.history.append({"epoch": state.epoch, "step": state.step, "wall_s": round(state.wall, 2),
                              "valid": objective.report(valid),
                              "params": parameter_report(self.pipeline, self.data.info.ground_truth)})
        target_met = self.stop.target_met(state.history[-1])
        learned = ", ".join(f"{k}={v:.3f}" for k, v in self.pipeline.physics.learned_parameters().items())
        losses = "  ".join(f"{k} {v:.3f}" for k, v in valid.items())
        self.progress.message(f"epoch {state.epoch}/{self.stop.plan.epochs}  {losses}"
                              + (f"  {learned}" if learned else ""))
        if valid["loss"] < state.best:
            state.best = valid["loss"]
            self.save("best")
        return target_met

    def _finish(self) -> dict[str, Any]:
        """The test split evaluated; metrics.json with its verdict, the figures and TensorBoard's summary written."""
        cfg, state = self.config, self.state
        test = self.objective.evaluate(self.pipeline, self.data.test, self.stop.plan.batch_size,
                                       self.data.test_controls)
        truth = self.data.info.ground_truth
        metrics: dict[str, Any] = {
            "task": cfg.data.task, "physics": cfg.physics.name, "integrator": cfg.integrator.name,
            "decoder": cfg.decoder.name, "seed": cfg.training.seed, "device": describe_device(self.device),
            "eval": {"split": "test", **self.objective.report(test)},
            "params": parameter_report(self.pipeline, truth), "train": self._train_summary(), "history": state.history,
        }
        physical = recording_report(self.pipeline, self.data.info)
        if physical is not None:
            metrics["physical"] = physical
        milestones = self.objective.milestones(self.pipeline, state.step)
        metrics["verdict"] = verdict(milestones, state.history, metrics["train"])
        if self.world.is_main:
            write_metrics(self.run_dir, metrics)
            save_figures(self.pipeline, self.objective, self.data.test, self.run_dir, self.board.writer, state.step,
                         self.data.test_controls)
            self.board.scalars("test", test, state.step)
            self.board.close_with_summary(cfg, metrics, truth, state.step)
            self.log(f"test: {json.dumps(metrics['eval'])}  params: {json.dumps(metrics['params'])}")
            if physical is not None:
                self.log(f"in physical units: {physical_line(physical)}")
            self.log(f"verdict: {metrics['verdict']['line']}")
        shutdown(self.world)
        return metrics

    def _train_summary(self) -> dict[str, Any]:
        """metrics.json's ``train``: why and where the run stopped, how long it took, how it went."""
        tcfg, state, wall = self.config.training, self.state, self.state.wall
        samples = state.step * self.stop.plan.batch_size * self.world.size
        return {"stopped": self.stop.reason, "epochs": tcfg.epochs, "epochs_done": state.epoch, "steps": state.step,
                "steps_planned": tcfg.steps, "max_time_s": tcfg.max_time, "wall_s": round(wall, 2),
                "samples_per_s": round(samples / wall, 1) if wall > 0 else 0.0, "rollbacks": state.failures,
                "processes": self.world.size, "ranks_in_sync": ranks_in_sync(self.params, self.world)}

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """What ``resume`` continues exactly from: weights, optimiser, objective, the run's counters, RNG states."""
        return {"model": self.pipeline.state_dict(), "optimizer": self.optimizer.state_dict(),
                "objective": self.objective.state_dict(), **self.state.checkpoint(),
                "rng": torch.get_rng_state(), "generator": self.generator.get_state(),
                "generator_device": self.device.type,
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def load_state(self, saved: dict[str, Any]) -> None:
        self.pipeline.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        for group in self.optimizer.param_groups:  # checkpoints older than per-group rates
            group.setdefault("base_lr", self.config.training.lr)
        if saved["objective"] is not None:
            self.objective.load_state_dict(saved["objective"])
        self.state = RunState.from_checkpoint(saved, self.device)
        torch.set_rng_state(saved["rng"])
        if saved.get("generator_device", self.device.type) == self.device.type:
            self.generator.set_state(saved["generator"])
        else:  # resumed on another kind of device, whose generator state has another layout
            self.generator.manual_seed(self.config.training.seed + self.state.step)
            self.log(f"note: resumed on {self.device.type}; the shuffling continues from a new seed")
        if saved.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])

    def weights_finite(self) -> bool:
        """One host sync for all weights (read at epoch ends and checkpoints, never per step)."""
        return bool(torch.stack([torch.isfinite(p).all() for p in self.pipeline.parameters()]).all())

    def save(self, name: str) -> None:
        if self.world.is_main and self.weights_finite():
            atomic_torch_save(self.checkpoint(), self.checkpoint_path(name))
        barrier(self.world)  # other ranks may read it back (rollback) right after

    def checkpoint_path(self, name: str) -> Path:
        return checkpoint_path(self.run_dir, name)

    def resume(self) -> None:
        path = self.checkpoint_path("last")
        if not path.is_file():
            raise PivfUserError(f"cannot resume {self.run_dir}: no checkpoint at {path}")
        with restoring(path):
            self.load_state(load_checkpoint(path))
        tcfg, state, steps_per_epoch = self.config.training, self.state, self.stop.plan.steps_per_epoch
        if tcfg.steps is not None and state.step > tcfg.steps:
            raise ConfigError(f"training.steps {tcfg.steps}: {self.run_dir} has already trained {state.step} steps; "
                              f"give at least that many")
        if tcfg.steps is None and state.epoch > tcfg.epochs:
            raise ConfigError(f"--epochs {tcfg.epochs}: {self.run_dir} has already trained "
                              f"{state.epoch} epochs; give at least that many")
        if state.epoch_step > steps_per_epoch:  # a hand-edited checkpoint: its epoch would never end
            raise PivfUserError(f"{path}: damaged checkpoint, 'epoch_step' is {state.epoch_step} but an epoch has "
                                f"{steps_per_epoch} steps")
        self.log(f"resuming {self.run_dir} after epoch {state.epoch} (step {state.step})")

    def param_groups(self) -> list[dict[str, Any]]:
        """One group at ``training.lr``, or two when the physical constants have a rate of their own
        (``base_lr`` is each group's rate before annealing and rollbacks)."""
        tcfg = self.config.training
        if tcfg.physics_lr is None:
            return [{"params": self.params, "base_lr": tcfg.lr}]
        physical = {id(p) for p in self.pipeline.physics.physical_constants()}
        groups = [{"params": [p for p in self.params if id(p) not in physical], "base_lr": tcfg.lr},
                  {"params": [p for p in self.params if id(p) in physical], "base_lr": tcfg.physics_lr}]
        return [group for group in groups if group["params"]]


#: the training settings ``resume`` may change: how long to go on, and where
RESUME_CHANGES = ("epochs", "steps", "max_time", "device")


def train(config: ExperimentConfig, log: Log = print, quiet: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train in a new run directory, locked while it trains; ``overwrite`` replaces an earlier run of the
    same ``logging.run_name``."""
    trainer = Trainer(config, log=log, quiet=quiet, overwrite=overwrite)
    try:
        return trainer.fit()
    finally:
        unlock_run(trainer.run_dir)


def resume(run_dir: Path, log: Log = print, quiet: bool = False, **changes: Any) -> dict[str, Any]:
    """Continue a run from its last checkpoint: same config, model, optimiser, RNG and epoch, except
    the ``RESUME_CHANGES`` given (``epochs`` extends the run), which config.yaml then records."""
    unknown = sorted(set(changes) - set(RESUME_CHANGES))
    if unknown:
        raise ConfigError(f"resume: training.{unknown[0]} cannot change; allowed: {', '.join(RESUME_CHANGES)}")
    config = load_run_config(run_dir)
    if "epochs" in changes and "steps" not in changes:
        changes["steps"] = None  # the length named last decides, as between config layers
    try:
        config.training = TrainingConfig.model_validate({**config.training.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "resume: training")) from None
    trainer = Trainer(config, log=log, run_dir=Path(run_dir), quiet=quiet)
    if trainer.world.is_main:
        lock_run(trainer.run_dir)  # one process trains a run at a time
    try:
        trainer.resume()
        check_shuffle_order(trainer.state.order, len(trainer.data.train), trainer.checkpoint_path("last"))
        if changes and trainer.world.is_main:
            write_config(trainer.run_dir, trainer.config)
        return trainer.fit()
    finally:
        unlock_run(trainer.run_dir)
