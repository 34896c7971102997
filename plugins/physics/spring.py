"""Two objects joined by a spring, PAIG's ``spring_ode_cell`` with a learnable stiffness and length.

PAIG's convention is kept: ``l`` is *half* the rest length (the generators' ``equil``), so the force
on object 0 is −k(|d| − 2l)·d̂ with d = q0 − q1, and object 1 feels the opposite. Masses are 1, so
p is both the velocity and the canonical momentum.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from pivf.api import ObjectParams, PhysicsSystem, floored_length, hookimpl, log_parameter

__all__ = ["Spring", "pivf_physics"]


class SpringParams(ObjectParams):
    n_objects: Literal[2] = Field(2, description="objects (data.n_objects; exactly 2)")
    k: float = Field(1.0, gt=0, description="initial spring constant (PAIG starts at 1)")
    l: float = Field(1.0, gt=0, description="initial half rest length (PAIG's `equil`; starts at 1)")
    learnable: bool = Field(True, description="learn k and l; false keeps them fixed")


class Spring(PhysicsSystem[SpringParams]):
    name = "spring"
    description = "two unit masses joined by a spring (PAIG); learnable k and half rest length l"
    ground_truth = {"k": 4.0, "l": 6.0}
    units = {"k": "1/s^2", "l": "px"}  # k per unit mass
    separable = True

    def __init__(self, params: SpringParams | None = None) -> None:
        super().__init__(params)
        self.log_k = log_parameter(self.params.k, self.params.learnable)
        self.log_l = log_parameter(self.params.l, self.params.learnable)

    def _stretch(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Extension |d| − 2l, shape (..., 1), and the unit vector d̂ from object 1 to object 0."""
        d = q[..., 0, :] - q[..., 1, :]
        length = floored_length(d)
        return length - 2 * self.log_l.exp(), d / length

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        extension, direction = self._stretch(q)
        force = self.log_k.exp() * extension * direction
        return torch.stack((-force, force), dim=-2)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        extension, _ = self._stretch(q)
        potential = 0.5 * self.log_k.exp() * extension.squeeze(-1) ** 2
        return 0.5 * (p**2).sum((-2, -1)) + potential

    def learned_parameters(self) -> dict[str, float]:
        if not self.params.learnable:
            return {}
        return {"k": self.log_k.exp().item(), "l": self.log_l.exp().item()}


@hookimpl
def pivf_physics() -> list[type]:
    return [Spring]
