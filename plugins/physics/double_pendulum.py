"""The double pendulum of the HGN environments, defined by its true Hamiltonian."""
from __future__ import annotations

from pydantic import Field
from torch import Tensor

from pivf.api import PhysicsSystem, PluginParams, hookimpl, log_parameter

__all__ = ["DoublePendulum", "pivf_physics"]


class DoublePendulumParams(PluginParams):
    g: float = Field(1.0, gt=0, description="initial gravitational acceleration")
    l: float = Field(1.0, gt=0, description="length of each rod (fixed)")
    m: float = Field(1.0, gt=0, description="mass of each bob (fixed)")
    learnable: bool = Field(True, description="learn g")


class DoublePendulum(PhysicsSystem[DoublePendulumParams]):
    """Two equal bobs on equal rigid rods; q = the rods' angles from the downward vertical and p the
    canonical momenta. H = (p₁² + 2p₂² − 2p₁p₂·cos Δ) / (2ml²(1 + sin² Δ)) + mgl(3 − 2cos q₁ − cos q₂),
    Δ = q₁ − q₂; the equations of motion follow from H by autograd, so they cannot disagree with it."""

    name = "double_pendulum"
    description = "double pendulum (equal bobs and rods) from its Hamiltonian; learnable g"
    state = "generalized"
    ground_truth = {"g": 3.0, "l": 1.0, "m": 1.0}

    def __init__(self, params: DoublePendulumParams | None = None) -> None:
        super().__init__(params)
        self.log_g = log_parameter(self.params.g, self.params.learnable)
        self.log_l = log_parameter(self.params.l, learnable=False)
        self.log_m = log_parameter(self.params.m, learnable=False)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        m, g, l = self.log_m.exp(), self.log_g.exp(), self.log_l.exp()
        (q1, q2), (p1, p2) = q.unbind(-1), p.unbind(-1)
        delta = q1 - q2
        kinetic = (p1**2 + 2 * p2**2 - 2 * p1 * p2 * delta.cos()) / (2 * m * l**2 * (1 + delta.sin() ** 2))
        return kinetic + m * g * l * (3 - 2 * q1.cos() - q2.cos())

    def learned_parameters(self) -> dict[str, float]:
        return {"g": self.log_g.exp().item()} if self.params.learnable else {}

    def state_shape(self) -> tuple[int, ...]:
        return (2,)


@hookimpl
def pivf_physics() -> list[type]:
    return [DoublePendulum]
