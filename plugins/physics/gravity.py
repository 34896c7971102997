"""N bodies under mutual gravity: PAIG's ``gravity_ode_cell`` and the HGN n-body environments.

The body i feels F_i = −g·m_i·Σ_j m_j·κ(r_ij)·(q_i − q_j), where κ(r) is 1/r³ (Newton, optionally
Plummer-softened) or, with ``paig_clipping``, PAIG's 1/clip(r, 1, 170)³. Every κ used here is the
derivative of a pair potential U (κ = U'(r)/r), so the energy is exact in all modes.

Why one plugin with a ``momentum`` switch rather than a separate ``nbody_hamiltonian``: the HGN
environments use the same force law and differ only in the meaning of p (canonical momentum m·v,
so dq/dt = p/m and dp/dt = F, instead of PAIG's velocity with dp/dt = F/m). With unit masses the two
coincide; keeping one class keeps one implementation of the pairwise law and of its energy.
"""
from __future__ import annotations

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor

from pivf.api import ObjectParams, PhysicsSystem, hookimpl, log_parameter

__all__ = ["Gravity", "pivf_physics"]

#: PAIG's clips: on the squared distance inside the sqrt, then on the distance that gets cubed
_PAIG_SQUARED_RANGE = (0.1, 1e5)
_PAIG_DISTANCE_RANGE = (1.0, 170.0)


class GravityParams(ObjectParams):
    n_objects: int = Field(3, ge=2, description="bodies (data.n_objects)")
    g: float = Field(1.0, gt=0, description="initial gravitational constant (PAIG starts at 1)")
    learnable: bool = Field(True, description="learn g; false keeps it fixed")
    masses: list[float] | None = Field(None, description="mass of each body (default all 1)")
    learn_masses: bool = Field(False, description="learn the masses too (only g·m is identifiable from motion)")
    paig_clipping: bool = Field(False, description="PAIG's clipped 1/r³ instead of Newton's law")
    softening: float = Field(0.0, ge=0, description="Plummer softening length (Newton's law only)")
    momentum: bool = Field(False, description="p is the canonical momentum m·v (HGN) instead of the velocity")

    @field_validator("masses")
    @classmethod
    def _one_positive_mass_per_body(cls, masses: list[float] | None, info: ValidationInfo) -> list[float] | None:
        n = info.data.get("n_objects")
        if masses is not None and n is not None and len(masses) != n:
            raise ValueError(f"need one mass per body ({n}), got {len(masses)}")
        if masses is not None and min(masses) <= 0:
            raise ValueError("masses must be positive")
        return masses


class Gravity(PhysicsSystem[GravityParams]):
    name = "gravity"
    description = "N bodies under gravity (PAIG 3-body, HGN n-body); learnable g, optional masses"
    ground_truth = {"g": 60.0}
    units = {"g": "px^3/s^2"}  # G per unit mass: a = g·m/r²
    separable = True

    def __init__(self, params: GravityParams | None = None) -> None:
        super().__init__(params)
        masses = self.params.masses or [1.0] * self.params.n_objects
        self.log_g = log_parameter(self.params.g, self.params.learnable)
        self.log_m = torch.nn.Parameter(torch.tensor(masses).log(), requires_grad=self.params.learn_masses)

    def _pairs(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Pairwise q_i − q_j (..., N, N, D), the force kernel κ and the pair potential U (..., N, N).

        The diagonal (i = j) has a zero difference, so its force term vanishes; it is masked out of
        the potential, and for Newton's law its distance is set to 1 so that no 0/0 appears.
        """
        diff = q.unsqueeze(-2) - q.unsqueeze(-3)
        squared = (diff**2).sum(-1)
        if self.params.paig_clipping:
            distance = squared.clamp(*_PAIG_SQUARED_RANGE).sqrt().clamp(*_PAIG_DISTANCE_RANGE)
            # U = r²/(2c³) − 3/(2c) with c = clip(r): −1/r inside the clip range, continuous outside
            kernel = distance**-3
            potential = 0.5 * squared * kernel - 1.5 / distance
        else:
            eye = torch.eye(q.shape[-2], dtype=q.dtype, device=q.device)
            softened = squared + self.params.softening**2 + eye
            kernel = softened**-1.5
            potential = -(softened**-0.5)
        off_diagonal = 1 - torch.eye(q.shape[-2], dtype=q.dtype, device=q.device)
        return diff, kernel, potential * off_diagonal

    def _accelerations(self, q: Tensor) -> Tensor:
        diff, kernel, _ = self._pairs(q)
        weights = self.log_g.exp() * self.log_m.exp() * kernel
        return -(weights.unsqueeze(-1) * diff).sum(-2)

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p / self.log_m.exp().unsqueeze(-1) if self.params.momentum else p

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        acceleration = self._accelerations(q)
        return acceleration * self.log_m.exp().unsqueeze(-1) if self.params.momentum else acceleration

    def energy(self, q: Tensor, p: Tensor) -> Tensor:
        """Kinetic plus potential energy; in ``momentum`` mode this is the Hamiltonian."""
        _, _, potential = self._pairs(q)
        m = self.log_m.exp()
        kinetic_scale = 1 / m if self.params.momentum else m
        kinetic = 0.5 * (kinetic_scale * (p**2).sum(-1)).sum(-1)
        products = m.unsqueeze(-1) * m.unsqueeze(-2)
        return kinetic + 0.5 * self.log_g.exp() * (products * potential).sum((-2, -1))

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        if not self.params.momentum:
            raise NotImplementedError("gravity: p holds velocities, which are not canonical; set momentum=true")
        return self.energy(q, p)

    def learned_parameters(self) -> dict[str, float]:
        learned = {"g": self.log_g.exp().item()} if self.params.learnable else {}
        if self.params.learn_masses:
            learned.update({f"m{i}": m for i, m in enumerate(self.log_m.exp().tolist())})
        return learned


@hookimpl
def pivf_physics() -> list[type]:
    return [Gravity]
