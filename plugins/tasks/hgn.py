"""The HGN environments (Toth et al. 2020) as tasks: 32×32 RGB, dt 0.125, 34-frame training
sequences (5 frames to infer the state at frame 4, then 29 steps: 30 frames of loss, as the HGN
authors describe) and 64-frame test sequences (30 more), constants and noise as in the HGN setup.

Each initial state (q, p) is drawn on a circle in phase space whose radius is drawn first,
uniformly in the environment's range, at a uniform angle (the public re-implementation normalises a
U(−1, 1)² vector instead, which favours the diagonals). Gaussian noise of the environment's std is
added to the state before it is drawn (observation noise; the stored q, p stay clean). Balls are
anti-aliased discs in the original colours (yellow, red, green) over its grey-blue background,
placed at sub-pixel precision rather than truncated to whole pixels, on a canvas of ±``canvas``
world units: pixel = size·(x + canvas)/(2·canvas), world y pointing down the image.

The double pendulum's physics (``plugins/physics/double_pendulum.py``) comes from its true
Hamiltonian (the public re-implementation's equations do not follow from the one in its docstring).
"""
from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

import torch
from pydantic import Field
from torch import Tensor

from pivf.api import (
    Task,
    TaskParams,
    Trajectory,
    draw_discs,
    hookimpl,
    normal,
    signs,
    uniform,
    unit_vectors,
    with_default,
)

__all__ = ["DampedSpringTask", "DoublePendulumTask", "MassSpringTask", "PendulumTask", "ThreeBodyTask", "TwoBodyTask",
           "pivf_tasks"]

_BACKGROUND = (81 / 255, 88 / 255, 93 / 255)
_COLOURS = ((173 / 255, 146 / 255, 0.0), (173 / 255, 0.0, 0.0), (0.0, 146 / 255, 0.0))


class HgnParams(TaskParams):
    n_objects: int = with_default(TaskParams, "n_objects", 1)
    train_length: int = with_default(TaskParams, "train_length", 34)
    test_length: int = with_default(TaskParams, "test_length", 64)
    dt: float = with_default(TaskParams, "dt", 0.125)
    radius: float = Field(4.0, gt=0, description="ball radius in pixels")
    canvas: float = Field(2.0, gt=0, description="half the side of the world area shown, in world units")
    noise_std: float = Field(0.1, ge=0, description="std of the observation noise on q, in world units")
    energy_range: tuple[float, float] = Field((0.1, 1.0), description="range of the phase-space radius of initial "
                                                                      "states")


HTP = TypeVar("HTP", bound=HgnParams)


def hgn_preset(degrees_of_freedom: int, angles: int = 0, objects: int = 1) -> dict[str, Any]:
    """The HGN paper's setup (5 frames in, 29 predicted, a learned Hamiltonian, leapfrog) with a
    latent of the system's ``degrees_of_freedom``, the first ``angles`` of them angles: the
    objective's ``paper`` recipe widens it to HGN's 16 channels of maps (which have no angles), its
    ``fast`` recipe keeps it as the length of the vectors q and p. ``objects``: the balls drawn,
    for models that track them (PAIG's encoder)."""
    latent = {"latent_channels": degrees_of_freedom, "angles": angles}
    return {
        "data": {"image_size": 32, "n_objects": objects, "input_steps": 5, "pred_steps": 29, "extrap_steps": 30,
                 "dt": 0.125},
        "physics": {"name": "hamiltonian_latent", **latent},
        "integrator": {"name": "leapfrog", "substeps": 1},
        "encoder": {"name": "hgn", **latent},
        "decoder": {"name": "hgn_conv", **latent},
        "objective": {"name": "hgn"},
        "training": {"epochs": 50, "batch_size": 16, "lr": 1.5e-4, "optimizer": "adam", "grad_clip": 0.0,
                     "anneal_at": 1.0},
    }


class HgnTask(Task[HTP]):
    """An HGN environment: q, p in world units, balls drawn where ``world_positions`` puts them."""

    Params = HgnParams
    preset = hgn_preset(degrees_of_freedom=1)

    def world_positions(self, q: Tensor) -> Tensor:
        """(N, T, K, 2) world coordinates of the balls for states q (N, T, *state)."""
        raise NotImplementedError

    def annulus(self, n: int, generator: torch.Generator, dims: int = 1) -> tuple[Tensor, Tensor]:
        """(q, p), each (n, dims): per coordinate pair a point on a circle of random radius."""
        low, high = self.params.energy_range
        radius = uniform(generator, (n, dims), low, high)
        direction = unit_vectors(generator, (n, dims))
        return radius * direction[..., 0], radius * direction[..., 1]

    def observe(self, q: Tensor, p: Tensor, generator: torch.Generator) -> Tensor:
        noisy = q + normal(generator, tuple(q.shape), self.params.noise_std).to(q.device)
        scale = self.params.image_size / (2 * self.params.canvas)
        return (self.world_positions(noisy) + self.params.canvas) * scale

    def render(self, trajectory: Trajectory) -> Tensor:
        device = trajectory.positions.device
        k = trajectory.positions.shape[2]
        colours = torch.tensor([_COLOURS[j % 3] for j in range(k)], device=device)
        size = self.params.image_size
        return draw_discs(trajectory.positions.float(), self.params.radius, colours,
                          torch.tensor(_BACKGROUND, device=device), size, size)


class MassSpringTask(HgnTask[HTP]):
    name = "mass_spring"
    description = "HGN mass-spring (k=2, m=0.5): one ball moving up and down"
    physics = "mass_spring"

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.annulus(n, generator)

    def world_positions(self, q: Tensor) -> Tensor:
        return torch.stack((torch.zeros_like(q), q), dim=-1)


class DampedSpringParams(HgnParams):
    energy_range: tuple[float, float] = with_default(HgnParams, "energy_range", (0.75, 1.4))


class DampedSpringTask(MassSpringTask[DampedSpringParams]):
    name = "damped_spring"
    description = "HGN damped mass-spring (ζ=0.3): energy decays"
    physics = "damped_spring"


class PendulumParams(HgnParams):
    n_objects: Literal[1] = Field(1, description="objects in the scene (exactly 1 in this task)")
    energy_range: tuple[float, float] = with_default(HgnParams, "energy_range", (1.3, 2.3))


class PendulumTask(HgnTask[HTP]):
    """A chain of ``n_objects`` rods hanging from the image centre, one angle per rod (0 = down)."""

    name = "pendulum"
    description = "HGN pendulum (m=0.5, l=1, g=3) swinging from the image centre"
    physics = "pendulum"
    Params = PendulumParams
    preset = hgn_preset(degrees_of_freedom=1, angles=1)

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.annulus(n, generator, dims=self.params.n_objects)

    def world_positions(self, q: Tensor) -> Tensor:
        rods = self.true_parameters()["l"] * torch.stack((q.sin(), q.cos()), dim=-1)  # (..., rods, 2)
        return rods.cumsum(dim=-2)  # each bob hangs from the one before


class TwoBodyParams(HgnParams):
    n_objects: int = Field(2, ge=2, description="bodies, on a regular polygon at the start")
    radius: float = with_default(HgnParams, "radius", 2.0)
    canvas: float = with_default(HgnParams, "canvas", 3.0)
    noise_std: float = with_default(HgnParams, "noise_std", 0.05)
    energy_range: tuple[float, float] = Field((0.5, 1.5), description="range of the orbit radius")
    orbit_noise: float = Field(0.1, ge=0, description="each velocity component is scaled by 1 + U(−x, x)")
    min_separation: float = Field(0.0, ge=0, description="redraw sequences where two bodies come closer (world units)")


TBTP = TypeVar("TBTP", bound=TwoBodyParams)


class TwoBodyTask(HgnTask[TBTP]):
    """Unit masses on a regular polygon of random radius r around the centre, each on its circular
    orbit (speed² = g·Σ_j 1/(4r·sin(πj/n)), tangential, one random sense for all), then each velocity
    component jittered by ``orbit_noise``. The bodies may drift off the canvas, as in the original.
    Sequences with a closer encounter than ``min_separation`` at any solver step are redrawn: near
    a collision of point masses no fixed-step solution is accurate, and the balls overlap anyway."""

    name = "two_body"
    description = "HGN two-body gravity (g=1, unit masses), near-circular orbits"
    physics = "gravity"
    preset = hgn_preset(degrees_of_freedom=4, objects=2)
    ground_truth = {"g": 1.0}
    Params = TwoBodyParams

    def physics_params(self) -> dict[str, Any]:
        return {**super().physics_params(), "n_objects": self.params.n_objects, "momentum": True}

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        k = self.params.n_objects
        low, high = self.params.energy_range
        radius = uniform(generator, (n, 1), low, high)
        angle = uniform(generator, (n, 1), 0.0, 2 * math.pi) + 2 * math.pi / k * torch.arange(k)
        outward = torch.stack((angle.cos(), angle.sin()), dim=-1)
        tangent = signs(generator, (n, 1, 1)) * torch.stack((-outward[..., 1], outward[..., 0]), dim=-1)
        pull = sum(1 / (4 * math.sin(math.pi * j / k)) for j in range(1, k))
        speed = (self.true_parameters()["g"] * pull / radius).sqrt()[..., None]
        jitter = 1 + uniform(generator, (n, k, 2), -self.params.orbit_noise, self.params.orbit_noise)
        return radius[..., None] * outward, speed * tangent * jitter

    def accept(self, q: Tensor, p: Tensor) -> Tensor:
        gaps = (q.unsqueeze(-2) - q.unsqueeze(-3)).norm(dim=-1)  # (N, S, K, K)
        k = q.shape[-2]
        pairs = torch.triu(torch.ones(k, k, dtype=torch.bool, device=q.device), diagonal=1)
        return (gaps[..., pairs] > self.params.min_separation).flatten(1).all(1)

    def world_positions(self, q: Tensor) -> Tensor:
        return q


class ThreeBodyParams(TwoBodyParams):
    n_objects: int = with_default(TwoBodyParams, "n_objects", 3)
    radius: float = with_default(TwoBodyParams, "radius", 1.0)
    noise_std: float = with_default(TwoBodyParams, "noise_std", 0.2)
    energy_range: tuple[float, float] = with_default(TwoBodyParams, "energy_range", (0.9, 1.2))
    min_separation: float = with_default(TwoBodyParams, "min_separation", 0.3)
    substeps: int = with_default(TwoBodyParams, "substeps", 20)


class ThreeBodyTask(TwoBodyTask[ThreeBodyParams]):
    name = "three_body"
    description = "HGN three-body gravity (g=1, unit masses), chaotic"
    preset = hgn_preset(degrees_of_freedom=6, objects=3)


class DoublePendulumParams(HgnParams):
    n_objects: Literal[2] = Field(2, description="objects in the scene (exactly 2 in this task)")
    radius: float = with_default(HgnParams, "radius", 2.0)
    canvas: float = with_default(HgnParams, "canvas", 2.5)
    noise_std: float = with_default(HgnParams, "noise_std", 0.05)
    energy_range: tuple[float, float] = with_default(HgnParams, "energy_range", (0.5, 1.3))


class DoublePendulumTask(PendulumTask[DoublePendulumParams]):
    """Each rod's (q_i, p_i) drawn on its own phase-space circle, as in DeepMind's suite."""

    name = "double_pendulum"
    description = "double pendulum (m=1, l=1, g=3) from its true Hamiltonian, chaotic"
    physics = "double_pendulum"
    preset = hgn_preset(degrees_of_freedom=2, angles=2, objects=2)


@hookimpl
def pivf_tasks() -> list[type]:
    return [MassSpringTask, DampedSpringTask, PendulumTask, TwoBodyTask, ThreeBodyTask, DoublePendulumTask]
