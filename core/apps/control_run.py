"""Control a trained run's system (``pivf control``): the live environment its task provides (a
``ControlledTask``), a policy (the learned model from pixels, the true model from the simulator's
state, or random inputs), episodes from rest, and their measures.

Changing the system without retraining: ``task_changes`` alter the live system (``mass=1.5``: a
heavier bob) and ``edits`` set learned parameters of the model (``actuation=4.36``), so a zero-shot
adaptation is one edit measured against the unedited model on the same changed system.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pivf.core.apps.control import (
    MPC,
    ControlledTask,
    Episode,
    PlannerSettings,
    Policy,
    RandomPolicy,
    encoded_state,
    run_episode,
    summarise,
    true_state,
)
from pivf.core.data.frames import as_float
from pivf.core.kernel.errors import ConfigError, PivfUserError
from pivf.core.kernel.images import frame_grid, save_png
from pivf.core.kernel.inference import inference
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.kernel.registry import registry
from pivf.core.training.evaluate import restore
from pivf.core.training.train import Log

__all__ = ["control_run"]

POLICIES = ("model", "true", "random")


def live_task(task: str, params: dict[str, Any], changes: dict[str, Any]) -> ControlledTask:
    """The run's task with ``changes`` to its params; it must be a ``ControlledTask``."""
    instance = registry().create("task", task, **{**params, **changes})
    if not isinstance(instance, ControlledTask):
        reg = registry()
        able = [name for name in reg.names("task") if issubclass(reg.get("task", name), ControlledTask)]
        raise PivfUserError(f"task '{task}' has no live system to control (a ControlledTask); tasks that have one: "
                            f"{', '.join(able) or '(none installed)'}")
    return instance


def make_policy(name: str, pipeline: Pipeline, task: ControlledTask, input_steps: int, goal: float,
                settings: PlannerSettings, generator: torch.Generator) -> Policy:
    if name == "random":
        return RandomPolicy(generator)
    if name == "model":
        return MPC(task, pipeline.physics, pipeline.integrator, pipeline.dt,
                   encoded_state(pipeline.encoder, input_steps), goal, settings, generator)
    return MPC(task, task.true_model(pipeline.physics), pipeline.integrator, pipeline.dt, true_state(task), goal,
               settings, generator)


def control_run(run_dir: Path, policy: str = "model", episodes: int = 10, steps: int = 100,
                goal: float = math.pi, task_changes: dict[str, Any] | None = None,
                edits: dict[str, float] | None = None, settings: PlannerSettings | None = None, seed: int = 0,
                checkpoint: str = "best", filmstrip: Path | None = None, log: Log = print) -> dict[str, Any]:
    """Run ``episodes`` of ``steps`` frames under ``policy`` and measure them (module docs)."""
    if policy not in POLICIES:
        raise ConfigError(f"--policy: unknown policy '{policy}'; allowed: {', '.join(POLICIES)}")
    config, _, pipeline, dataset = restore(run_dir, checkpoint, "cpu", log)
    info = dataset.info
    task = live_task(info.task, info.params, task_changes or {})
    for name, value in (edits or {}).items():
        pipeline.physics.set_learned(name, value)
    generator = torch.Generator().manual_seed(seed)
    chosen = make_policy(policy, pipeline, task, config.data.input_steps, goal, settings or PlannerSettings(),
                         generator)
    environment = task.environment()
    played: list[Episode] = []
    with inference(pipeline):
        for k, start in enumerate(task.starts(episodes, generator)):
            played.append(run_episode(task, environment, chosen, steps, goal, start, config.data.input_steps))
            log(f"episode {k + 1}/{episodes}: return {played[-1].total:.1f}, "
                f"{'success' if played[-1].success else 'failure'}")
    if filmstrip is not None:
        save_filmstrip(played[0], Path(filmstrip))
    return {"run": str(run_dir), "policy": policy, "goal": goal, "steps": steps, "task": info.task,
            "task_changes": task_changes or {}, "edits": edits or {},
            "learned": pipeline.physics.learned_parameters(), "true": task.true_parameters(),
            "training_frames": int((dataset.train.shape[0] + dataset.valid.shape[0]) * dataset.train.shape[1]),
            **summarise(played),
            "returns": [round(episode.total, 2) for episode in played],
            "successes": [episode.success for episode in played]}


def save_filmstrip(episode: Episode, path: Path, frames: int = 16) -> None:
    """Every k-th frame of an episode in two rows, as a PNG."""
    picked = np.linspace(0, len(episode.frames) - 1, frames).round().astype(int)
    images = as_float(torch.from_numpy(np.stack([episode.frames[i] for i in picked])))
    save_png(frame_grid([images[: frames // 2], images[frames // 2:]]), path, scale=4)
