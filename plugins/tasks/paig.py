"""The five PAIG tasks (Jaques et al. 2020), with the original file names, sizes and lengths.

Initial states follow the original generators: a spring pair's centre of mass uniform away from
the walls, a random axis, a separation of 2·l·U(0.5, 1.5), and each ball a random direction at
speed (vx, vy); three bodies around the image centre on near-circular orbits. Sequences where a
ball touches a wall (or, for gravity, two bodies come within radius + 1 px) at any solver point
are redrawn. The bouncing-balls and half-pane generators were never released; they are written here
from the paper's description (see each class).
"""
from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

import torch
from pydantic import Field
from torch import Tensor

from pivf.api import (
    BallTask,
    BallTaskParams,
    DataError,
    Trajectory,
    hookimpl,
    signs,
    splat_,
    sprite_patches,
    to_uint8,
    uniform,
    unit_vectors,
    with_default,
)
from pivf.plugins.sprites import DIGIT_BOX, SPRITE_SCALE, digit_sprite, natural_background

__all__ = ["BouncingBalls", "MnistSpringColor", "SpringColor", "SpringColorHalf", "ThreeBodyColor", "paig_preset",
           "pivf_tasks"]


class PaigParams(BallTaskParams):
    speed_x: float = Field(8.0, ge=0, description="initial speed of each ball along x (the file names' vx)")
    speed_y: float = Field(8.0, ge=0, description="initial speed of each ball along y (vy)")


def paig_preset(physics: dict[str, Any], image_size: int, n_objects: int, input_steps: int, pred_steps: int,
                extrap_steps: int, dt: float, lr: float, alpha: float) -> dict[str, Any]:
    """A PAIG task's config layer: the original code's sizes, plugins and training (reference §1.2);
    the PAIG objective's recipe (``--recipe``) sits above it."""
    return {
        "data": {"image_size": image_size, "n_objects": n_objects, "input_steps": input_steps,
                 "pred_steps": pred_steps, "extrap_steps": extrap_steps, "dt": dt},
        "physics": physics,
        "integrator": {"name": "euler", "substeps": 5},
        "encoder": {"name": "paig_unet"},
        "decoder": {"name": "spatial_transformer"},
        "objective": {"name": "paig", "recons_weight": alpha},
        "training": {"epochs": 500, "batch_size": 100, "optimizer": "rmsprop_tf", "grad_clip": 1.0,
                     "anneal_at": 0.75, "lr": lr},
    }


def _velocities(generator: torch.Generator, n: int, k: int, speed_x: float, speed_y: float) -> Tensor:
    """Each ball a random direction, scaled by (vx, vy) as the original generators do."""
    return unit_vectors(generator, (n, k)) * torch.tensor([speed_x, speed_y], dtype=torch.float64)


class SpringParams(PaigParams):
    n_objects: Literal[2] = Field(2, description="objects in the scene (exactly 2 in this task)")


SCP = TypeVar("SCP", bound=SpringParams)


class SpringColor(BallTask[SCP]):
    name = "spring_color"
    description = "two balls joined by a spring (k=4, l=6)"
    physics = "spring"
    ground_truth = {"k": 4.0, "l": 6.0}
    Params = SpringParams
    name_template = "color_spring_vx{speed_x}_vy{speed_y}_sl{length}_r{radius}_k{k}_e{l}"
    preset = paig_preset({"name": "spring"}, 32, 2, 4, 6, 20, 0.3, 6e-4, 3.0)

    def placement_radius(self) -> float:
        """How far an object reaches from its centre when the centre of mass is drawn."""
        return self.params.radius

    def centre_range(self) -> tuple[Tensor, Tensor]:
        """Box (low, high), each (x, y), for the pair's centre of mass: l + radius from the walls."""
        margin = self.placement_radius() + self.true_parameters()["l"]
        low, high = margin, self.params.image_size - margin
        if low > high:
            raise DataError(f"task '{self.name}': a rest length of {2 * (margin - self.placement_radius()):g} px "
                            f"does not fit in {self.params.image_size} px")
        return torch.tensor([low, low], dtype=torch.float64), torch.tensor([high, high], dtype=torch.float64)

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        low, high = self.centre_range()
        centre = uniform(generator, (n, 1, 2), low, high)
        axis = unit_vectors(generator, (n, 1))
        half_separation = self.true_parameters()["l"] * uniform(generator, (n, 1, 1), 0.5, 1.5)
        q = centre + half_separation * torch.cat((axis, -axis), dim=1)
        return q, _velocities(generator, n, 2, self.params.speed_x, self.params.speed_y)


class HalfPaneParams(SpringParams):
    speed_x: float = with_default(PaigParams, "speed_x", 4.0)
    speed_y: float = with_default(PaigParams, "speed_y", 4.0)


class SpringColorHalf(SpringColor[HalfPaneParams]):
    """Both balls stay wholly in the left half for the first ``train_length`` frames of every
    sequence, so a model never sees the right half while it trains (the input and prediction frames
    are among those); in test sequences a ball centre must then cross into the right half.

    Built by rejection: the centre of mass is drawn in the left half and sequences that leave it too
    early, or (test) never cross, are redrawn. The original generator was never released.
    """

    name = "spring_color_half"
    description = "spring pair confined to the left half while training; crosses over only in test extrapolation"
    name_template = SpringColor.name_template + "_halfpane"

    def centre_range(self) -> tuple[Tensor, Tensor]:
        low, high = super().centre_range()
        low[0], high[0] = self.params.radius, self.params.image_size / 2 - self.params.radius
        return low, high

    def accept(self, q: Tensor, p: Tensor) -> Tensor:
        confined = (self.params.train_length - 1) * self.params.substeps + 1
        middle = self.params.image_size / 2
        ok = super().accept(q, p) & (q[:, :confined, :, 0] <= middle - self.params.radius).flatten(1).all(1)
        if q.shape[1] > confined:
            ok &= (q[:, confined:, :, 0] > middle).flatten(1).any(1)
        return ok


class BouncingBalls(BallTask[PaigParams]):
    """Two balls flying freely and bouncing elastically off the walls (no ball-ball collisions, as
    the model has none). Start positions are uniform where a ball fits; the original generator was
    never released."""

    name = "bouncing_balls"
    description = "two balls bouncing off the walls"
    physics = "bouncing"
    name_template = "color_bounce_vx{speed_x}_vy{speed_y}_sl{length}_r{radius}"
    preset = paig_preset({"name": "bouncing"}, 32, 2, 4, 6, 20, 0.3, 3e-4, 2.0)

    def physics_params(self) -> dict[str, Any]:
        return {**super().physics_params(), "radius": self.params.radius, "box": float(self.params.image_size),
                "n_objects": self.params.n_objects}

    def accept(self, q: Tensor, p: Tensor) -> Tensor:
        return torch.ones(q.shape[0], dtype=torch.bool, device=q.device)  # the walls are the physics here

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        k, r = self.params.n_objects, self.params.radius
        q = uniform(generator, (n, k, 2), r, self.params.image_size - r)
        return q, _velocities(generator, n, k, self.params.speed_x, self.params.speed_y)


class ThreeBodyParams(PaigParams):
    image_size: int = with_default(PaigParams, "image_size", 36)
    n_objects: Literal[3] = Field(3, description="objects in the scene (exactly 3 in this task)")
    train_length: int = with_default(PaigParams, "train_length", 20)
    test_length: int = with_default(PaigParams, "test_length", 40)
    dt: float = with_default(PaigParams, "dt", 0.5)
    speed_x: float = with_default(PaigParams, "speed_x", 2.0)
    speed_y: float = with_default(PaigParams, "speed_y", 2.0)


class ThreeBodyColor(BallTask[ThreeBodyParams]):
    """Three unit masses around the image centre at angles 120° ± 14° apart on a common radius
    (0.75-1.0)·W/4, moving tangentially at speed (vx, vy), one shared sense of rotation, plus one
    shared drift U(−½, ½)² (original generator)."""

    name = "3bp_color"
    description = "three bodies under gravity (g=60)"
    physics = "gravity"
    ground_truth = {"g": 60.0}
    name_template = "color_3bp_vx{speed_x}_vy{speed_y}_sl{length}_r{radius}_g{g}_m1_dt{dt}"
    # clipped forces, as PAIG's: early in training the encoder's positions can nearly coincide
    preset = paig_preset({"name": "gravity", "paig_clipping": True}, 36, 3, 4, 12, 24, 0.5, 1e-3, 5.0)

    def physics_params(self) -> dict[str, Any]:
        return {**super().physics_params(), "n_objects": 3}

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        size = self.params.image_size
        first = uniform(generator, (n, 1), 0.0, 2 * math.pi)
        jitter = uniform(generator, (n, 2), -0.25, 0.25)
        angle = torch.cat((first, first + 2 * math.pi / 3 + jitter[:, :1], first + 4 * math.pi / 3 + jitter[:, 1:]), 1)
        radius = (uniform(generator, (n, 1), 0.0, 1.0) / 2 + 0.75) * size / 4
        q = size / 2 + radius[..., None] * torch.stack((angle.cos(), angle.sin()), -1)
        sense = signs(generator, (n, 1))
        tangent = torch.stack(((angle + sense * math.pi / 2).cos(), (angle + sense * math.pi / 2).sin()), -1)
        speed = torch.tensor([self.params.speed_x, self.params.speed_y], dtype=torch.float64)
        drift = uniform(generator, (n, 1, 2), -0.5, 0.5)
        return q, tangent * speed + drift

    def accept(self, q: Tensor, p: Tensor) -> Tensor:
        gaps = (q.unsqueeze(-2) - q.unsqueeze(-3)).norm(dim=-1)  # (N, S, 3, 3)
        pairs = torch.triu(torch.ones(3, 3, dtype=torch.bool, device=q.device), diagonal=1)
        return super().accept(q, p) & (gaps[..., pairs] > self.params.radius + 1).flatten(1).all(1)


class MnistSpringParams(SpringParams):
    image_size: int = with_default(SpringParams, "image_size", 64)
    digits: tuple[int, int] = Field((5, 0), description="the two digits (MNIST's first two training digits are 5, 0)")
    background: Literal["photo", "none"] = Field("photo", description="scikit-image's coffee photo, or black")


class MnistSpringColor(SpringColor[MnistSpringParams]):
    """Two digits joined by a spring over a fixed background, 64 px. Digit j is alpha-blended into
    channel j alone (digit 0 red, digit 1 green; the reverse of the balls' order), so a digit both
    adds its own colour and hides the background in the other channels. The centre of mass keeps
    11 px + l from the walls, but only a 2-px core must stay inside, so digits may be cut off at the
    edges, as in the original."""

    name = "mnist_spring_color"
    description = "two digits joined by a spring (k=2, l=12) over a photograph"
    ground_truth = {"k": 2.0, "l": 12.0}
    name_template = "color_mnist_spring_vx{speed_x}_vy{speed_y}_sl{length}_r{radius}_k{k}_e{l}"
    chunk_size = 250
    preset = paig_preset({"name": "spring"}, 64, 2, 3, 7, 20, 0.3, 6e-4, 3.0)

    def placement_radius(self) -> float:
        return DIGIT_BOX / 2

    def render(self, trajectory: Trajectory) -> Tensor:
        n, t, _, _ = trajectory.positions.shape
        size = self.params.image_size
        device = trajectory.positions.device
        if self.params.background == "photo":
            frames = natural_background(size).to(device).repeat(n * t, 1, 1, 1)
        else:
            frames = torch.zeros(n * t, size, size, 3, device=device)
        for j, digit in enumerate(self.params.digits):
            sprite, anchor = digit_sprite(digit)
            patches, corners = sprite_patches(trajectory.positions[:, :, j].reshape(-1, 2).float(), sprite.to(device),
                                              SPRITE_SCALE, anchor)
            alpha = splat_(frames.new_zeros(n * t, size, size), patches, corners, torch.arange(n * t, device=device))
            alpha.clamp_(0, 1)
            frames *= (1 - alpha).unsqueeze(-1)  # new = alpha·e_j + (1 − alpha)·old
            frames[..., j] += alpha
        return to_uint8(frames).view(n, t, size, size, 3)


@hookimpl
def pivf_tasks() -> list[type]:
    return [BouncingBalls, SpringColor, SpringColorHalf, ThreeBodyColor, MnistSpringColor]
