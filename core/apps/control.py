"""Model-predictive control from pixels: act on a live system with a model learned from its video.

At every control step a controller estimates the state, plans a sequence of inputs through a
physics model and its integrator, applies the first input and plans again at the next frame
(receding horizon). ``MPC`` does this with any state estimate and any model:

- from pixels (``encoded_state``): the trained encoder reads the last ``input_steps`` frames, and the
  plan runs through the trained physics and integrator, the same differentiable model the video
  taught, rolled out under candidate inputs (``Integrator.rollout(..., controls)``);
- from the simulator (``true_state``): the true state and the true equations, the reference a
  learned controller is measured against.

What the system is, and what a good frame of it is, the task says: a task that can be controlled
implements ``ControlledTask`` (the live ``environment``, the ``cost`` of a model's state, the cost of
the true state, ``success``, the ``true_model`` and ``true_state``); ``mujoco_pendulum_motor`` does,
for a swing-up. Control runs for any actuated task that implements it.

The planner is the cross-entropy method: sample input sequences from a Gaussian clipped to the
inputs' range [−1, 1], keep the ``elites`` cheapest, refit the Gaussian to them, repeat; each
step starts from the previous plan shifted by one frame. An episode's return is minus the task's
cost of the true state summed over its frames.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.kernel.errors import ConfigError
from pivf.core.kernel.integrator import Integrator
from pivf.core.kernel.model import Encoder
from pivf.core.kernel.physics import PhysicsSystem

__all__ = ["ControlledTask", "CrossEntropyPlanner", "Environment", "Episode", "MPC", "PlannerSettings", "Policy",
           "RandomPolicy", "encoded_state", "run_episode", "summarise", "true_state"]

#: the true state of a live system, in the task's own coordinates (a pendulum's angle and rate)
State = tuple[float, ...]


class Environment(Protocol):
    """A live system a controller acts on once per frame (``MujocoPendulumEnvironment``)."""

    dt: float

    def reset(self, start: float) -> np.ndarray:
        """Start at rest from ``start`` (what it means, the task says: a pendulum's angle); the first frame."""

    def step(self, u: float) -> np.ndarray:
        """Apply ``u`` for one frame interval; the next frame."""

    def state(self) -> State:
        """The true state, which scores an episode and is never shown to a learned controller."""


@runtime_checkable
class ControlledTask(Protocol):
    """A task whose system ``pivf control`` acts on: where its episodes start, the live system, what
    a frame costs, when an episode succeeds, and the reference model (``mujoco_pendulum_motor``)."""

    def environment(self) -> Environment:
        """A live system to act on, rendered by the task's camera."""

    def starts(self, n: int, generator: torch.Generator) -> list[float]:
        """Where ``n`` episodes start (``Environment.reset``), drawn from ``generator``."""

    def cost(self, physics: PhysicsSystem, q: Tensor, p: Tensor, u: Tensor, goal: float) -> Tensor:
        """The cost of each planned frame: states (T, P, *state) of ``physics``, inputs (T, P, m) → (T, P)."""

    def state_cost(self, state: State, u: float, goal: float) -> float:
        """The cost of one frame of the live system: its true state after input ``u``."""

    def success(self, states: Sequence[State], goal: float) -> bool:
        """Whether an episode of these true states (its first one the start) reached ``goal``."""

    def true_model(self, physics: PhysicsSystem) -> PhysicsSystem:
        """``physics``'s kind with the simulator's true parameters: the reference controller's model."""

    def true_state(self, environment: Environment) -> tuple[Tensor, Tensor]:
        """The live system's state as the model's (q, p), each (1, *state)."""

    def true_parameters(self) -> dict[str, float]:
        """The simulator's parameters, reported beside the learned ones (every ``Task`` has them)."""


@dataclass
class Observation:
    """What a policy may read: the frames so far (uint8 (H, W, C), oldest first) and the live system,
    whose true state only reference controllers read."""

    frames: list[np.ndarray]
    environment: Environment


class PlannerSettings(BaseModel):
    """The cross-entropy planner's settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    horizon: int = Field(25, ge=1, description="frames planned ahead")
    population: int = Field(300, ge=2, description="input sequences sampled per iteration")
    elites: int = Field(20, ge=1, description="cheapest sequences the Gaussian is refitted to")
    iterations: int = Field(4, ge=1, description="refits per control step")
    spread: float = Field(0.5, gt=0, description="the sampling spread each step starts from, around the "
                                                 "previous plan; smaller holds a balance more precisely")
    min_std: float = Field(0.05, gt=0, description="floor on the sampling spread, so the search never collapses")
    knots: int = Field(5, ge=1, description="independent values per sampled perturbation: each is held over "
                                            "horizon/knots frames, so sampling searches a few dimensions")


class CrossEntropyPlanner:
    """CEM over input sequences (H, m) in [−1, 1], warm-started from the last plan."""

    def __init__(self, settings: PlannerSettings, n_controls: int, generator: torch.Generator) -> None:
        if settings.elites > settings.population:
            raise ValueError(f"elites ({settings.elites}) must not exceed population ({settings.population})")
        self.settings = settings
        self.n_controls = n_controls
        self.generator = generator
        self.mean = torch.zeros(settings.horizon, n_controls)

    def reset(self) -> None:
        self.mean = torch.zeros_like(self.mean)

    def plan(self, cost: Callable[[Tensor], Tensor]) -> Tensor:
        """The first input (m,) of the cheapest sequence found; ``cost`` maps inputs (P, H, m) to (P,).

        Perturbations are piecewise constant over ``knots`` blocks: with one independent value per
        frame the search cannot find the one steady input that holds a bob off the vertical (an
        unstable balance, a needle in 25 dimensions). The cheapest sequence seen, not the elites'
        mean, is executed and carried over to the next step: averaging elites around a steady
        input far from zero pulls it towards zero."""
        s = self.settings
        mean, std = self.mean, torch.full_like(self.mean, s.spread)
        best, lowest = mean, float("inf")
        for _ in range(s.iterations):
            noise = torch.randn((s.population, s.knots, self.n_controls), generator=self.generator)
            noise = noise.repeat_interleave(-(-s.horizon // s.knots), dim=1)[:, : s.horizon]
            samples = (mean + std * noise).clamp(-1.0, 1.0)
            samples[0], samples[1] = mean, best  # the current plans compete too
            costs = cost(samples)
            order = costs.topk(s.elites, largest=False).indices
            if float(costs[order[0]]) < lowest:
                best, lowest = samples[order[0]], float(costs[order[0]])
            elite = samples[order]
            mean, std = elite.mean(0), elite.std(0).clamp_min(s.min_std)
        self.mean = torch.cat([best[1:], best[-1:]])
        return best[0]


StateEstimate = Callable[[Observation], tuple[Tensor, Tensor]]


class MPC:
    """Receding-horizon control through ``physics`` rolled out by ``integrator``, towards the task's
    ``goal`` at the task's ``cost`` (module docs)."""

    def __init__(self, task: ControlledTask, physics: PhysicsSystem, integrator: Integrator, dt: float,
                 estimate: StateEstimate, goal: float, settings: PlannerSettings, generator: torch.Generator) -> None:
        if physics.n_controls < 1:
            raise ConfigError(f"physics '{physics.name}' takes no control inputs; control needs an actuated "
                              "physics trained under recorded inputs")
        self.task, self.physics, self.integrator, self.estimate, self.goal = task, physics, integrator, estimate, goal
        self.times = torch.arange(settings.horizon + 1, dtype=torch.float64) * dt
        self.planner = CrossEntropyPlanner(settings, physics.n_controls, generator)

    def reset(self) -> None:
        self.planner.reset()

    @torch.no_grad()
    def act(self, observation: Observation) -> float:
        q0, p0 = self.estimate(observation)

        def cost(inputs: Tensor) -> Tensor:
            n = inputs.shape[0]
            q, p = self.integrator.rollout(self.physics, q0.expand(n, *q0.shape[1:]), p0.expand(n, *p0.shape[1:]),
                                           self.times, inputs.transpose(0, 1))
            return self.task.cost(self.physics, q[1:], p[1:], inputs.transpose(0, 1), self.goal).sum(0)

        return float(self.planner.plan(cost)[0])


def encoded_state(encoder: Encoder, input_steps: int) -> StateEstimate:
    """The trained encoder's state at the newest of the last ``input_steps`` frames: pixels only."""
    def estimate(observation: Observation) -> tuple[Tensor, Tensor]:
        frames = as_float(torch.from_numpy(np.stack(observation.frames[-input_steps:]))[None])
        encoded = encoder(frames)
        return encoded.q0, encoded.p0
    return estimate


def true_state(task: ControlledTask) -> StateEstimate:
    """The simulator's state as the model's coordinates (``ControlledTask.true_state``): no vision."""
    def estimate(observation: Observation) -> tuple[Tensor, Tensor]:
        return task.true_state(observation.environment)
    return estimate


class RandomPolicy:
    """Inputs uniform in [−1, 1]: the baseline a controller must beat."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def reset(self) -> None:
        """Nothing to forget."""

    def act(self, observation: Observation) -> float:
        return float(torch.rand((), generator=self.generator) * 2 - 1)


class Policy(Protocol):
    def reset(self) -> None: ...

    def act(self, observation: Observation) -> float: ...


@dataclass
class Episode:
    """One episode: the true states (steps + 1), inputs and rewards (steps), frames seen, and whether
    the task counts it a success."""

    states: list[State]
    inputs: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0  # spent choosing inputs
    success: bool = False

    @property
    def total(self) -> float:
        return float(sum(self.rewards))


def run_episode(task: ControlledTask, environment: Environment, policy: Policy, steps: int, goal: float,
                start: float, history: int) -> Episode:
    """``steps`` frames of control from rest at ``start``; the policy first sees ``history`` copies of
    the first frame (a system at rest looks the same in every frame)."""
    frame = environment.reset(start)
    observation = Observation([frame] * history, environment)
    episode = Episode([environment.state()], frames=[frame])
    policy.reset()
    for _ in range(steps):
        started = time.perf_counter()
        u = min(1.0, max(-1.0, policy.act(observation)))
        episode.seconds += time.perf_counter() - started
        frame = environment.step(u)
        observation.frames = observation.frames[1:] + [frame]
        state = environment.state()
        episode.states.append(state)
        episode.inputs.append(u)
        episode.rewards.append(-task.state_cost(state, u, goal))
        episode.frames.append(frame)
    episode.success = task.success(episode.states, goal)
    return episode


def summarise(episodes: list[Episode]) -> dict[str, float]:
    """Success rate, mean and spread of the return, and seconds per control step."""
    returns = np.array([episode.total for episode in episodes])
    steps = sum(len(episode.inputs) for episode in episodes)
    return {"episodes": len(episodes), "success_rate": float(np.mean([e.success for e in episodes])),
            "mean_return": float(returns.mean()), "std_return": float(returns.std()),
            "seconds_per_step": sum(episode.seconds for episode in episodes) / max(steps, 1)}
