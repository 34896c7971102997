"""Control a trained run's system (``pivf control``): the live environment its task provides, a
policy (the learned model from pixels, the true model from the simulator's state, or random
inputs), episodes from rest, and their measures.

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

from pivf.core.control import (
    MPC,
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
from pivf.core.data.task import Task
from pivf.core.errors import ConfigError, PivfUserError
from pivf.core.evaluate import restore
from pivf.core.images import frame_grid, save_png
from pivf.core.inference import inference
from pivf.core.pipeline import Pipeline
from pivf.core.registry import registry
from pivf.core.train import Log

__all__ = ["control_run"]

POLICIES = ("model", "true", "random")
#: episodes start at rest this close (rad) to hanging straight down, drawn per episode
START_SPREAD = 0.2


def live_task(task: str, params: dict[str, Any], changes: dict[str, Any]) -> Task:
    """The run's task with ``changes`` to its params; it must offer a live ``environment``."""
    instance = registry().create("task", task, **{**params, **changes})
    if not callable(getattr(instance, "environment", None)):
        raise PivfUserError(f"task '{task}' has no live environment to control; actuated tasks such as "
                            "mujoco_pendulum_motor have one")
    return instance


def make_policy(name: str, pipeline: Pipeline, task: Task, input_steps: int, goal: float,
                settings: PlannerSettings, generator: torch.Generator) -> Policy:
    if name == "random":
        return RandomPolicy(generator)
    if name == "model":
        return MPC(pipeline.physics, pipeline.integrator, pipeline.dt, encoded_state(pipeline.encoder, input_steps),
                   goal, settings, generator)
    truth = task.true_parameters()
    physics = registry().create("physics", pipeline.physics.name, **{
        **pipeline.physics.params.model_dump(), "g_over_l": truth["g_over_l"], "length": truth["length"],
        "pivot": (truth["pivot_x"], truth["pivot_y"]), "damping": truth["damping"], "actuation": truth["actuation"]})
    return MPC(physics, pipeline.integrator, pipeline.dt, true_state(truth["length"]), goal, settings, generator)


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
    environment = task.environment()  # type: ignore[attr-defined]
    starts = (torch.rand(episodes, generator=generator, dtype=torch.float64) * 2 - 1) * START_SPREAD
    played: list[Episode] = []
    with inference(pipeline):
        for k, start in enumerate(starts.tolist()):
            played.append(run_episode(environment, chosen, steps, goal, start, config.data.input_steps))
            log(f"episode {k + 1}/{episodes}: return {played[-1].total:.1f}, "
                f"{'success' if played[-1].succeeded(goal) else 'failure'}")
    if filmstrip is not None:
        save_filmstrip(played[0], Path(filmstrip))
    return {"run": str(run_dir), "policy": policy, "goal": goal, "steps": steps, "task": task.name,
            "task_changes": task_changes or {}, "edits": edits or {},
            "learned": pipeline.physics.learned_parameters(), "true": task.true_parameters(),
            "training_frames": int((dataset.train.shape[0] + dataset.valid.shape[0]) * dataset.train.shape[1]),
            **summarise(played, goal),
            "returns": [round(episode.total, 2) for episode in played],
            "successes": [episode.succeeded(goal) for episode in played]}


def save_filmstrip(episode: Episode, path: Path, frames: int = 16) -> None:
    """Every k-th frame of an episode in two rows, as a PNG."""
    picked = np.linspace(0, len(episode.frames) - 1, frames).round().astype(int)
    images = as_float(torch.from_numpy(np.stack([episode.frames[i] for i in picked])))
    save_png(frame_grid([images[: frames // 2], images[frames // 2:]]), path, scale=4)
