"""Balls flying freely in a square box with elastic walls, PAIG's ``bouncing_ode_cell``.

Between walls there is no force. After every integrator substep ``constrain`` mirrors a ball that
crossed a wall back inside (about the line where its rim touches the wall) and flips that velocity
component, per coordinate, exactly as PAIG does for its hard-coded 32-px frame and radius 2; here
both are params. Selection is by ``torch.where``, so the map is differentiable almost everywhere and
batches never branch on data. There is nothing to learn and no ball-ball collision.
"""
from __future__ import annotations

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor

from pivf.api import ObjectParams, PhysicsSystem, hookimpl

__all__ = ["Bouncing", "pivf_physics"]


class BouncingParams(ObjectParams):
    radius: float = Field(2.0, ge=0, description="ball radius in pixels")
    box: float = Field(32.0, gt=0, validate_default=True, description="side of the square box in pixels (image size)")

    @field_validator("box")
    @classmethod
    def _room_for_a_ball(cls, box: float, info: ValidationInfo) -> float:
        radius = info.data.get("radius")
        if radius is not None and box <= 2 * radius:
            raise ValueError(f"must exceed the ball diameter {2 * radius}")
        return box


class Bouncing(PhysicsSystem[BouncingParams]):
    name = "bouncing"
    description = "balls in a box with elastic walls (PAIG); no learnable parameters"
    has_constraints = True

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return torch.zeros_like(p)

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        low, high = self.params.radius, self.params.box - self.params.radius
        for wall, outside in ((high, q > high), (low, q < low)):
            q = torch.where(outside, 2 * wall - q, q)
            p = torch.where(outside, -p, p)
        return q, p

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return 0.5 * (p**2).sum((-2, -1))


@hookimpl
def pivf_physics() -> list[type]:
    return [Bouncing]
