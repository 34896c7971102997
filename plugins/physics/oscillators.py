"""One-dimensional oscillators of the HGN environments: the mass-spring and its damped variant.

State is the displacement q and the canonical momentum p = m·q̇, shape (B, 1). The damped system is
the same Hamiltonian plus a friction force on the momentum, ṗ = −k·q − 2ζ·√(k/m)·p, so it subclasses
the undamped one instead of repeating it.
"""
from __future__ import annotations

from typing import TypeVar

from pydantic import Field
from torch import Tensor

from pivf.api import PhysicsSystem, PluginParams, hookimpl, log_parameter

__all__ = ["DampedSpring", "MassSpring", "pivf_physics"]


class MassSpringParams(PluginParams):
    k: float = Field(1.0, gt=0, description="initial spring constant")
    m: float = Field(1.0, gt=0, description="initial mass")
    learnable: bool = Field(True, description="learn k and m")


MSP = TypeVar("MSP", bound=MassSpringParams)


class MassSpring(PhysicsSystem[MSP]):
    name = "mass_spring"
    description = "1-D harmonic oscillator H = p²/2m + kq²/2 (HGN); learnable k and m"
    state = "generalized"  # a displacement along a line, drawn only by its task
    Params = MassSpringParams
    ground_truth = {"k": 2.0, "m": 0.5}
    separable = True

    def __init__(self, params: MSP | None = None) -> None:
        super().__init__(params)
        self.log_k = log_parameter(self.params.k, self.params.learnable)
        self.log_m = log_parameter(self.params.m, self.params.learnable)

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p / self.log_m.exp()

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return -self.log_k.exp() * q

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return (0.5 * p**2 / self.log_m.exp() + 0.5 * self.log_k.exp() * q**2).sum(-1)

    def learned_parameters(self) -> dict[str, float]:
        if not self.params.learnable:
            return {}
        return {"k": self.log_k.exp().item(), "m": self.log_m.exp().item()}

    def state_shape(self) -> tuple[int, ...]:
        return (1,)


class DampedSpringParams(MassSpringParams):
    zeta: float = Field(0.1, gt=0, description="initial damping ratio ζ")
    learn_damping: bool = Field(True, description="learn ζ")


class DampedSpring(MassSpring[DampedSpringParams]):
    name = "damped_spring"
    description = "1-D damped oscillator ṗ = −kq − 2ζ√(k/m)·p (HGN); learnable k, m and damping ζ"
    ground_truth = {"k": 2.0, "m": 0.5, "zeta": 0.3}
    conservative = False
    separable = False  # the friction reads p

    def __init__(self, params: DampedSpringParams | None = None) -> None:
        super().__init__(params)
        self.log_zeta = log_parameter(self.params.zeta, self.params.learn_damping)

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        friction = 2 * self.log_zeta.exp() * (0.5 * (self.log_k - self.log_m)).exp()
        return super().dp_dt(q, p) - friction * p

    def learned_parameters(self) -> dict[str, float]:
        learned = super().learned_parameters()
        if self.params.learn_damping:
            learned["zeta"] = self.log_zeta.exp().item()
        return learned


@hookimpl
def pivf_physics() -> list[type]:
    return [MassSpring, DampedSpring]
