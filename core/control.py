"""Model-predictive control from pixels: swing a pendulum up and hold it with a model learned from video.

At every control step a controller estimates the state, plans a sequence of inputs through a
physics model and its integrator, applies the first input and plans again at the next frame
(receding horizon). ``MPC`` does this with any state estimate and any model:

- from pixels (``encoded_state``): the trained encoder reads the last ``input_steps`` frames, and the
  plan runs through the trained physics and integrator, the same differentiable model the video
  taught, rolled out under candidate inputs (``Integrator.rollout(..., controls)``);
- from the simulator (``true_state``): the true state and the true equations, the reference a
  learned controller is measured against.

The planner is the cross-entropy method: sample input sequences from a Gaussian clipped to the
inputs' range [−1, 1], keep the ``elites`` cheapest, refit the Gaussian to them, repeat; each
step starts from the previous plan shifted by one frame. The cost of a frame is the pendulum's
(``frame_cost``): the squared angle to the goal, wrapped to (−π, π], plus 0.1 θ̇² and 0.01 u², read
from the model's state through ``Angular``; an episode's return is minus the same cost summed
over its frames, from the simulator's true angle.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.errors import ConfigError
from pivf.core.integrator import Integrator
from pivf.core.model import Encoder
from pivf.core.physics import PhysicsSystem

__all__ = ["CrossEntropyPlanner", "Episode", "MPC", "PlannerSettings", "Policy", "RandomPolicy", "encoded_state",
           "run_episode", "summarise", "true_state", "wrap"]

RATE_WEIGHT = 0.1
INPUT_WEIGHT = 0.01
#: an episode succeeds when the angle stays this close to the goal (rad) over its last quarter
SUCCESS_TOLERANCE = 0.3


@runtime_checkable
class Angular(Protocol):
    """A physics whose state has an angle from the downward vertical and its rate (a pendulum)."""

    def angle(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """(θ, θ̇), each of q's shape without the object and coordinate axes."""


class Environment(Protocol):
    """A live system a controller acts on once per frame (``MujocoPendulumEnvironment``)."""

    dt: float

    def reset(self, angle: float, rate: float = 0.0) -> np.ndarray: ...

    def step(self, u: float) -> np.ndarray: ...

    def state(self) -> tuple[float, float]: ...

    def bob(self) -> np.ndarray: ...


@dataclass
class Observation:
    """What a policy may read: the frames so far (uint8 (H, W, C), oldest first) and the live system,
    whose true state only reference controllers read."""

    frames: list[np.ndarray]
    environment: Environment


def wrap(angle: Tensor) -> Tensor:
    """Angles wrapped into (−π, π]."""
    return angle - 2 * math.pi * torch.ceil((angle - math.pi) / (2 * math.pi))


def frame_cost(angle: Tensor, rate: Tensor, u: Tensor, goal: float) -> Tensor:
    """The cost of one frame (see the module docs); ``u`` has a trailing input axis."""
    return wrap(angle - goal) ** 2 + RATE_WEIGHT * rate**2 + INPUT_WEIGHT * (u**2).sum(-1)


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
    """Receding-horizon control through ``physics`` rolled out by ``integrator`` (module docs)."""

    def __init__(self, physics: PhysicsSystem, integrator: Integrator, dt: float, estimate: StateEstimate,
                 goal: float, settings: PlannerSettings, generator: torch.Generator) -> None:
        if not isinstance(physics, Angular) or physics.n_controls < 1:
            raise ConfigError(f"physics '{physics.name}' is not an actuated system with an angle to control; "
                              "control needs one such as pivot_pendulum trained under recorded inputs")
        self.physics, self.integrator, self.estimate, self.goal = physics, integrator, estimate, goal
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
            angle, rate = self.physics.angle(q[1:], p[1:])
            return frame_cost(angle, rate, inputs.transpose(0, 1), self.goal).sum(0)

        return float(self.planner.plan(cost)[0])


def encoded_state(encoder: Encoder, input_steps: int) -> StateEstimate:
    """The trained encoder's state at the newest of the last ``input_steps`` frames: pixels only."""
    def estimate(observation: Observation) -> tuple[Tensor, Tensor]:
        frames = as_float(torch.from_numpy(np.stack(observation.frames[-input_steps:]))[None])
        encoded = encoder(frames)
        return encoded.q0, encoded.p0
    return estimate


def true_state(length: float) -> StateEstimate:
    """The simulator's state in the pendulum's pixel coordinates: the bob where the camera shows it
    and the velocity θ̇·ℓ along t̂ = (r̂_y, −r̂_x), ℓ the rod's length in pixels."""
    def estimate(observation: Observation) -> tuple[Tensor, Tensor]:
        angle, rate = observation.environment.state()
        q = torch.tensor(observation.environment.bob(), dtype=torch.float32)[None]
        p = rate * length * torch.tensor([[[math.cos(angle), -math.sin(angle)]]])
        return q, p
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
    """One episode: true angles and rates (steps + 1), inputs and rewards (steps), frames seen."""

    angles: list[float]
    rates: list[float]
    inputs: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0  # spent choosing inputs

    @property
    def total(self) -> float:
        return float(sum(self.rewards))

    def succeeded(self, goal: float) -> bool:
        """Within ``SUCCESS_TOLERANCE`` of the goal at every frame of the last quarter."""
        last = self.angles[-max(1, len(self.rewards) // 4):]
        return bool((wrap(torch.tensor(last, dtype=torch.float64) - goal).abs() <= SUCCESS_TOLERANCE).all())


def run_episode(environment: Environment, policy: Policy, steps: int, goal: float, start_angle: float,
                history: int) -> Episode:
    """``steps`` frames of control from rest at ``start_angle``; the policy first sees ``history``
    copies of the first frame (a system at rest looks the same in every frame)."""
    frame = environment.reset(start_angle)
    observation = Observation([frame] * history, environment)
    angle, rate = environment.state()
    episode = Episode([angle], [rate], frames=[frame])
    policy.reset()
    for _ in range(steps):
        started = time.perf_counter()
        u = min(1.0, max(-1.0, policy.act(observation)))
        episode.seconds += time.perf_counter() - started
        frame = environment.step(u)
        observation.frames = observation.frames[1:] + [frame]
        angle, rate = environment.state()
        cost = frame_cost(torch.tensor(angle), torch.tensor(rate), torch.tensor([u]), goal)
        episode.angles.append(angle)
        episode.rates.append(rate)
        episode.inputs.append(u)
        episode.rewards.append(-float(cost))
        episode.frames.append(frame)
    return episode


def summarise(episodes: list[Episode], goal: float) -> dict[str, float]:
    """Success rate, mean and spread of the return, and seconds per control step."""
    returns = np.array([episode.total for episode in episodes])
    steps = sum(len(episode.inputs) for episode in episodes)
    return {"episodes": len(episodes), "success_rate": float(np.mean([e.succeeded(goal) for e in episodes])),
            "mean_return": float(returns.mean()), "std_return": float(returns.std()),
            "seconds_per_step": sum(episode.seconds for episode in episodes) / max(steps, 1)}
