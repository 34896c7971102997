"""The training loop, top to bottom.

Performance habits: the dataset stays on the device as uint8 and batches are indexed there; nothing
inside a step reads a value back to the host (losses and a non-finite flag are accumulated as
tensors and read every ``log_every`` steps); the original loss is kept exactly, so its thresholds
keep their meaning.

Robustness: checkpoints (model, optimiser, objective state, RNG states, epoch) are written
atomically, and only when every weight is finite, so a good checkpoint is never replaced by a bad
one. A non-finite loss is neutralised in the step it happens (its update is zeroed) and, at the next
read-back, the run rolls back to the last good checkpoint with the learning rate halved; after
``MAX_FAILURES`` rollbacks it stops with a clear message. ``resume`` continues a run exactly, also
from the middle of an epoch (the epoch's shuffle order is in the checkpoint).

``training.max_time`` bounds the wall-clock time of the loop: the clock is read on the host after
each optimiser step (no device sync; under torchrun rank 0's clock decides at each read-back), and
when it runs out the run validates, checkpoints, evaluates and writes itself as at the last epoch.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from torch import Tensor

from pivf.core.atomic import atomic_torch_save
from pivf.core.build import build_objective, build_pipeline, open_dataset
from pivf.core.checkpoints import check_shuffle_order, checkpoint_path, load_checkpoint, restoring
from pivf.core.config import ExperimentConfig, TrainingConfig
from pivf.core.data.frames import as_float
from pivf.core.data.provenance import record_dataset
from pivf.core.devices import describe_device, resolve_device
from pivf.core.distributed import (
    all_ranks_finite,
    average_gradients,
    barrier,
    broadcast_parameters,
    init_world,
    local_device_name,
    ranks_in_sync,
    share_from_main,
    shutdown,
)
from pivf.core.errors import ConfigError, PivfUserError
from pivf.core.optim import make_optimizer
from pivf.core.plugin import format_validation_error
from pivf.core.progress import Progress
from pivf.core.report import parameter_report, save_figures
from pivf.core.runs import (
    load_run_config,
    lock_run,
    new_run_dir,
    unlock_run,
    with_dataset_sizes,
    write_config,
    write_metrics,
)
from pivf.core.verdict import verdict

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["Log", "RESUME_CHANGES", "Trainer", "resume", "train"]

Log = Callable[[str], None]
MAX_FAILURES = 3
#: training frames handed to ``Pipeline.prepare`` before the first step
PREPARE_FRAMES = 2048


class TrainingDiverged(PivfUserError):
    """Training kept producing non-finite values; the last good checkpoint is intact."""


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
        self.dataset = open_dataset(config, self.log)
        self.config = config = with_dataset_sizes(config, self.dataset)
        self.train_x, self.valid_x, self.test_x = (
            s.to(self.device) for s in (self.dataset.train, self.dataset.valid, self.dataset.test))
        self.train_u, self.valid_u, self.test_u = (None if u is None else u.to(self.device) for u in (
            self.dataset.train_controls, self.dataset.valid_controls, self.dataset.test_controls))
        self.pipeline = build_pipeline(config).to(self.device)
        if tcfg.compile:
            self.pipeline.compile_vision()
        self.objective = build_objective(config)
        self.params = [p for p in self.pipeline.parameters() if p.requires_grad]
        broadcast_parameters(self.params, self.world)
        self.optimizer = make_optimizer(tcfg.optimizer, self.param_groups(), tcfg.lr)
        self.generator = torch.Generator(device=self.device).manual_seed(tcfg.seed)
        self.run_dir = share_from_main(
            run_dir or (new_run_dir(config, overwrite) if self.world.is_main else None), self.world)
        if run_dir is None and self.world.is_main:  # what a new run trains on, for evaluate to check
            record_dataset(self.run_dir, self.dataset)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.epoch_step = 0  # steps done in the current epoch (non-zero only when stopped on time)
        self.order: Tensor | None = None  # the current epoch's shuffle, once drawn
        self.best = math.inf
        self.failures = 0
        self.lr_scale = 1.0
        self.wall = 0.0
        self.quiet = quiet
        self.writer: SummaryWriter | None = None
        self.history: list[dict[str, Any]] = []  # one entry per validation: when, losses, parameters
        self.stop_when = stop_when  # a caller's target, asked at each validation (e.g. a benchmark's success)
        self.target_reached = False

    # --- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.pipeline.state_dict(), "optimizer": self.optimizer.state_dict(),
                "objective": self.objective.state_dict(), "epoch": self.epoch,
                "step": self.step, "best": self.best, "failures": self.failures, "lr_scale": self.lr_scale,
                "wall": self.wall, "rng": torch.get_rng_state(), "generator": self.generator.get_state(),
                "generator_device": self.device.type, "epoch_step": self.epoch_step,
                "order": None if self.order is None else self.order.cpu(), "history": self.history,
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pipeline.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # checkpoints older than per-group rates
            group.setdefault("base_lr", self.config.training.lr)
        self.history = state.get("history", [])
        if state["objective"] is not None:
            self.objective.load_state_dict(state["objective"])
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        self.failures, self.lr_scale, self.wall = state["failures"], state["lr_scale"], state["wall"]
        self.epoch_step = state.get("epoch_step", 0)
        self.order = None if state.get("order") is None else state["order"].to(self.device)
        torch.set_rng_state(state["rng"])
        if state.get("generator_device", self.device.type) == self.device.type:
            self.generator.set_state(state["generator"])
        else:  # resumed on another kind of device, whose generator state has another layout
            self.generator.manual_seed(self.config.training.seed + self.step)
            self.log(f"note: resumed on {self.device.type}; the shuffling continues from a new seed")
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def weights_finite(self) -> bool:
        """One host sync for all weights (read at epoch ends and checkpoints, never per step)."""
        return bool(torch.stack([torch.isfinite(p).all() for p in self.pipeline.parameters()]).all())

    def save(self, name: str) -> None:
        if self.world.is_main and self.weights_finite():
            atomic_torch_save(self.state(), self.checkpoint_path(name))
        barrier(self.world)  # other ranks may read it back (rollback) right after

    def checkpoint_path(self, name: str) -> Path:
        return checkpoint_path(self.run_dir, name)

    def resume(self) -> None:
        path = self.checkpoint_path("last")
        if not path.is_file():
            raise PivfUserError(f"cannot resume {self.run_dir}: no checkpoint at {path}")
        with restoring(path):
            self.load_state(load_checkpoint(path))
        tcfg = self.config.training
        if tcfg.steps is not None and self.step > tcfg.steps:
            raise ConfigError(f"training.steps {tcfg.steps}: {self.run_dir} has already trained {self.step} steps; "
                              f"give at least that many")
        if tcfg.steps is None and self.epoch > tcfg.epochs:
            raise ConfigError(f"--epochs {tcfg.epochs}: {self.run_dir} has already trained "
                              f"{self.epoch} epochs; give at least that many")
        _, steps_per_epoch = self.batching()
        if self.epoch_step > steps_per_epoch:  # a hand-edited checkpoint: its epoch would never end
            raise PivfUserError(f"{path}: damaged checkpoint, 'epoch_step' is {self.epoch_step} but an epoch has "
                                f"{steps_per_epoch} steps")
        self.log(f"resuming {self.run_dir} after epoch {self.epoch} (step {self.step})")

    def batching(self) -> tuple[int, int]:
        """(batch size per process, steps per epoch); the remainder of an epoch is dropped, as the original."""
        n_train = self.train_x.shape[0]
        batch_size = min(self.config.training.batch_size, n_train // self.world.size)
        return batch_size, n_train // (batch_size * self.world.size)

    def roll_back(self) -> None:
        """Return to the last good checkpoint with a halved learning rate, or stop."""
        failures = self.failures + 1
        if failures > MAX_FAILURES:
            raise TrainingDiverged(
                f"training diverged (non-finite loss) {failures} times; stopped. The last good checkpoint "
                f"is {self.checkpoint_path('last')}; try a lower --lr")
        lr_scale = self.lr_scale * 0.5  # keeps halving even when several failures share a checkpoint
        self.load_state(load_checkpoint(self.checkpoint_path("last")))
        self.failures, self.lr_scale = failures, lr_scale
        self.log(f"non-finite loss: rolled back to epoch {self.epoch}, learning rate ×{self.lr_scale:g} "
                 f"(failure {failures}/{MAX_FAILURES})")

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

    # --- the loop ------------------------------------------------------------------------------------
    def length(self, steps_per_epoch: int) -> tuple[int, int]:
        """(steps, epochs) of the whole run: ``training.steps`` whatever the dataset's size, else
        ``training.epochs`` passes over it."""
        tcfg = self.config.training
        if tcfg.steps is None:
            return tcfg.epochs * steps_per_epoch, tcfg.epochs
        return tcfg.steps, math.ceil(tcfg.steps / steps_per_epoch)

    def lr_factor(self, total_steps: int) -> float:
        """Annealed once the run is ``anneal_at`` of the way through its steps or its time budget."""
        tcfg = self.config.training
        progress = self.step / max(total_steps, 1)
        if tcfg.max_time is not None:
            progress = max(progress, self.wall / tcfg.max_time)
        annealed = progress >= tcfg.anneal_at and self.step > 0
        return self.lr_scale * (tcfg.anneal_factor if annealed else 1.0)

    def fit(self) -> dict[str, Any]:
        cfg, tcfg = self.config, self.config.training
        objective, pipeline = self.objective, self.pipeline
        n_train = self.train_x.shape[0]
        batch_size, steps_per_epoch = self.batching()
        if self.world.is_main and cfg.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when logging

            # a resumed run drops the points logged after its checkpoint, keeping those at its step
            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=self.step + 1 if self.step else None)
        if self.epoch == 0 and self.step == 0:  # a new run; a resumed one has this in its checkpoint
            self.pipeline.prepare(as_float(self.train_x[: max(1, PREPARE_FRAMES // self.train_x.shape[1])]))
            self.save("last")  # the state every rollback can return to
        total_steps, epochs = self.length(steps_per_epoch)
        progress = Progress(total_steps, self.log, enabled=not self.quiet and self.world.is_main)
        self.log(f"training {cfg.physics.name}+{cfg.integrator.name} on {cfg.data.task} ({n_train} sequences, "
                 f"{total_steps} steps, {describe_device(self.device)}"
                 f"{f', {self.world.size} processes' if self.world.active else ''}) → {self.run_dir}")
        running: dict[str, Tensor] = {}
        accumulated = 0
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        zero = torch.zeros((), device=self.device)
        started = time.perf_counter() - self.wall
        deadline = None if tcfg.max_time is None else time.perf_counter() + tcfg.max_time
        stopped = "epochs" if tcfg.steps is None else "steps"
        while self.epoch < epochs and self.step < total_steps:
            for group in self.optimizer.param_groups:
                group["lr"] = group["base_lr"] * self.lr_factor(total_steps)
            if self.order is None:
                self.order = torch.randperm(n_train, device=self.device, generator=self.generator)
            shard = self.order[self.world.rank::self.world.size]
            diverged = out_of_time = False
            for i in range(self.epoch_step, steps_per_epoch):
                rows = shard[i * batch_size:(i + 1) * batch_size]
                batch = as_float(self.train_x[rows, : objective.train_length])
                with objective.driving(pipeline, self.train_u, rows):
                    losses = objective.training_losses(pipeline, batch, self.step)
                self.optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                average_gradients(self.params, self.world)
                finite = all_ranks_finite(losses["loss"], self.world)
                nonfinite |= ~finite
                for p in self.params:  # a non-finite step must not move the weights
                    if p.grad is not None:
                        torch.where(finite, p.grad, zero, out=p.grad)
                if tcfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_value_(self.params, tcfg.grad_clip)
                self.optimizer.step()
                self.step += 1
                self.after_step(progress)
                self.epoch_step = i + 1
                for key, value in losses.items():
                    running[key] = running.get(key, 0.0) + value.detach()
                accumulated += 1
                read_back = self.step % cfg.logging.log_every == 0 or i == steps_per_epoch - 1
                out_of_time = self._out_of_time(deadline, read_back)
                read_back |= self.step >= total_steps
                if read_back or out_of_time:
                    if bool(nonfinite):
                        diverged = True
                        break
                    values = {k: float(v) / accumulated for k, v in running.items()}
                    running, accumulated = {}, 0
                    self._scalars("train", values)
                    self._scalars("param", pipeline.physics.learned_parameters())
                    self._scalars("perf", {"lr": self.optimizer.param_groups[0]["lr"],
                                           "samples_per_s": self.step * batch_size * self.world.size
                                           / max(time.perf_counter() - started, 1e-9)})
                    progress.update(self.step, self.epoch + 1, values)
                if out_of_time or self.step >= total_steps:
                    break
            if diverged or not self.weights_finite():
                nonfinite.zero_()
                running, accumulated = {}, 0
                self.roll_back()
                continue
            if self.epoch_step == steps_per_epoch:
                self.epoch, self.epoch_step, self.order = self.epoch + 1, 0, None
            self.wall = time.perf_counter() - started
            self._end_of_epoch(progress, batch_size, epochs, stopping=out_of_time or self.step >= total_steps)
            if self.target_reached and self.step < total_steps:
                stopped = "target"
                self.log(f"stopped at step {self.step} after {self.wall:.0f} s: the validation met the caller's target")
                break
            if out_of_time and self.step < total_steps:
                stopped = "max_time"
                self.log(f"stopped after {self.wall:.0f} s of training (training.max_time = {tcfg.max_time:g} s), "
                         f"at step {self.step}/{total_steps}, epoch {self.epoch + (self.epoch_step > 0)}/{epochs}")
                break
        return self._finish(batch_size, stopped)

    def after_step(self, progress: Progress) -> None:
        """The objective's check after a step; a re-initialised part restarts the optimiser's moments
        (under torchrun rank 0 decides and its weights are broadcast)."""
        reinitialised, messages = self.objective.after_step(self.pipeline, self.step)
        for message in messages:
            progress.message(message)
        if self.world.active:
            reinitialised = share_from_main(reinitialised, self.world)
            if reinitialised:
                broadcast_parameters(self.params, self.world)
        if reinitialised:
            self.optimizer.state.clear()

    def _out_of_time(self, deadline: float | None, read_back: bool) -> bool:
        """Whether the time budget is spent: every step on one process (a host clock read, no device
        sync); under torchrun at read-backs only, by rank 0's clock, so all ranks stop at one step."""
        if deadline is None:
            return False
        if not self.world.active:
            return time.perf_counter() >= deadline
        return read_back and share_from_main(time.perf_counter() >= deadline, self.world)

    def _end_of_epoch(self, progress: Progress, batch_size: int, epochs: int, stopping: bool) -> None:
        """Validation and checkpoints at an epoch's end; all of them where the run stops."""
        tcfg, logging = self.config.training, self.config.logging
        last = stopping or self.epoch == epochs
        boundary = self.epoch_step == 0
        if last or (boundary and self.epoch % tcfg.eval_every == 0):
            valid = self.objective.evaluate(self.pipeline, self.valid_x[:, : self.objective.train_length], batch_size,
                                            self.valid_u)
            self._scalars("valid", valid)
            self.history.append({"epoch": self.epoch, "step": self.step, "wall_s": round(self.wall, 2),
                                 "valid": self.objective.report(valid),
                                 "params": parameter_report(self.pipeline, self.dataset.info.ground_truth)})
            self.target_reached = self.stop_when is not None and bool(self.stop_when(self.history[-1]))
            learned = ", ".join(f"{k}={v:.3f}" for k, v in self.pipeline.physics.learned_parameters().items())
            progress.message(f"epoch {self.epoch}/{epochs}  " + "  ".join(f"{k} {v:.3f}" for k, v in valid.items())
                             + (f"  {learned}" if learned else ""))
            if valid["loss"] < self.best:
                self.best = valid["loss"]
                self.save("best")
        if last or (boundary and self.epoch % logging.checkpoint_every == 0):
            self.save("last")

    def _finish(self, batch_size: int, stopped: str) -> dict[str, Any]:
        cfg = self.config
        test = self.objective.evaluate(self.pipeline, self.test_x, batch_size, self.test_u)
        truth = self.dataset.info.ground_truth
        metrics: dict[str, Any] = {
            "task": cfg.data.task, "physics": cfg.physics.name, "integrator": cfg.integrator.name,
            "decoder": cfg.decoder.name, "seed": cfg.training.seed, "device": describe_device(self.device),
            "eval": {"split": "test", **self.objective.report(test)},
            "params": parameter_report(self.pipeline, truth),
            "train": {"stopped": stopped, "epochs": cfg.training.epochs, "epochs_done": self.epoch,
                      "steps": self.step, "steps_planned": cfg.training.steps, "max_time_s": cfg.training.max_time,
                      "wall_s": round(self.wall, 2),
                      "samples_per_s": round(self.step * batch_size * self.world.size / self.wall, 1)
                      if self.wall > 0 else 0.0, "rollbacks": self.failures,
                      "processes": self.world.size, "ranks_in_sync": ranks_in_sync(self.params, self.world)},
            "history": self.history,
        }
        metrics["verdict"] = verdict(self.objective.milestones(self.pipeline, self.step), self.history,
                                     metrics["train"])
        if self.world.is_main:
            write_metrics(self.run_dir, metrics)
            save_figures(self.pipeline, self.objective, self.test_x, self.run_dir, self.writer, self.step, self.test_u)
            self._scalars("test", test)
            self._tensorboard_summary(metrics, truth)
            self.log(f"test: {json.dumps(metrics['eval'])}  params: {json.dumps(metrics['params'])}")
            self.log(f"verdict: {metrics['verdict']['line']}")
        shutdown(self.world)
        return metrics

    # --- TensorBoard ----------------------------------------------------------------------------------
    def _scalars(self, prefix: str, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, self.step)

    def _tensorboard_summary(self, metrics: dict[str, Any], truth: dict[str, float]) -> None:
        if self.writer is None:
            return
        self._scalars("param_true", truth)
        cfg = self.config
        hparams = {"task": cfg.data.task, "physics": cfg.physics.name, "integrator": cfg.integrator.name,
                   "substeps": cfg.integrator.params.get("substeps", 0), "seed": cfg.training.seed,
                   "lr": cfg.training.lr}
        final = {f"hparam/{k}": v for k, v in metrics["eval"].items() if isinstance(v, float)}
        final.update({f"hparam/{k}_rel_error": v["rel_error"]
                      for k, v in metrics["params"].items() if "rel_error" in v})
        self.writer.add_hparams(hparams, final, run_name=".", global_step=self.step)
        self.writer.close()


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
        check_shuffle_order(trainer.order, len(trainer.train_x), trainer.checkpoint_path("last"))
        if changes and trainer.world.is_main:
            write_config(trainer.run_dir, trainer.config)
        return trainer.fit()
    finally:
        unlock_run(trainer.run_dir)
