"""A rigid pendulum: angle q (q = 0 hangs straight down) and canonical momentum p = m·l²·q̇.

H = p²/(2ml²) + mgl(1 − cos q), as in the HGN pendulum environment. PAIG's control experiments add
an actuation term to the angular acceleration; with no control input here it is a constant torque τ
(dp/dt gains +τ), which makes the system non-conservative whenever it is non-zero or learned.

Only g is learned by default: when p0 comes from a velocity estimator, the angle trajectory fixes
g/l but not g and l separately, so learning the length is opt-in (``learn_length``).
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from pivf.api import PhysicsSystem, PluginParams, hookimpl, log_parameter

__all__ = ["Pendulum", "pivf_physics"]


class PendulumParams(PluginParams):
    g: float = Field(1.0, gt=0, description="initial gravitational acceleration")
    l: float = Field(1.0, gt=0, description="initial length")
    m: float = Field(1.0, gt=0, description="mass of the bob (fixed)")
    learnable: bool = Field(True, description="learn g")
    learn_length: bool = Field(False, description="learn l as well (identifiable only with canonical p0)")
    actuation: float = Field(0.0, description="initial constant torque τ (PAIG's actuation term)")
    learn_actuation: bool = Field(False, description="learn τ")


class Pendulum(PhysicsSystem[PendulumParams]):
    name = "pendulum"
    description = "rigid pendulum, angle and canonical momentum; learnable g, optional l and actuation torque"
    state = "generalized"  # an angle, drawn only by its task
    ground_truth = {"g": 3.0, "l": 1.0, "m": 0.5}
    separable = True

    def __init__(self, params: PendulumParams | None = None) -> None:
        super().__init__(params)
        self.log_g = log_parameter(self.params.g, self.params.learnable)
        self.log_l = log_parameter(self.params.l, self.params.learn_length)
        self.log_m = log_parameter(self.params.m, learnable=False)
        torque = torch.tensor(self.params.actuation)
        self.actuation = torch.nn.Parameter(torque, requires_grad=self.params.learn_actuation)

    @property
    def conservative(self) -> bool:  # type: ignore[override]  # per instance: depends on the torque
        return not self.params.learn_actuation and self.params.actuation == 0.0

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p / (self.log_m.exp() * self.log_l.exp() ** 2)

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return -(self.log_m + self.log_g + self.log_l).exp() * torch.sin(q) + self.actuation

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        m, g, l = self.log_m.exp(), self.log_g.exp(), self.log_l.exp()
        return (p**2 / (2 * m * l**2) + m * g * l * (1 - torch.cos(q))).sum(-1)

    def learned_parameters(self) -> dict[str, float]:
        flags = {"g": self.params.learnable, "l": self.params.learn_length}
        learned = {name: getattr(self, f"log_{name}").exp().item() for name, on in flags.items() if on}
        if self.params.learn_actuation:
            learned["actuation"] = self.actuation.item()
        return learned

    def state_shape(self) -> tuple[int, ...]:
        return (1,)


@hookimpl
def pivf_physics() -> list[type]:
    return [Pendulum]
