"""Charged particles: N bodies that attract or repel by Coulomb's law.

A worked example of a third-party physics plugin for pivf: a params model, a learnable constant
stored as a log, ground-truth values for data generation, a Hamiltonian for energy checks, a task
that renders videos of the system (with the preset a run of it starts from), and hooks that
register both. See docs/plugins.md in the pivf repository for the walk-through; tests/ holds the
package's own tests, built on ``pivf.testing``.
"""
from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor

from pivf.api import (
    BallTask,
    BallTaskParams,
    ObjectParams,
    PhysicsSystem,
    hookimpl,
    log_parameter,
    uniform,
    unit_vectors,
)


class ChargedParams(ObjectParams):
    coulomb: float = Field(1.0, gt=0, description="initial Coulomb constant (learned)")
    charges: list[float] = Field([1.0, -1.0], min_length=1, description="fixed charge of each particle")
    softening: float = Field(1.0, ge=0, description="added to squared distances so close passes stay finite")
    learnable: bool = Field(True, description="learn the Coulomb constant; false keeps it fixed")

    @model_validator(mode="after")
    def _one_charge_per_particle(self) -> ChargedParams:
        if len(self.charges) != self.n_objects:
            raise ValueError(f"charges: need one per object ({self.n_objects}), got {len(self.charges)}")
        return self


class ChargedParticles(PhysicsSystem[ChargedParams]):
    name = "charged_particles"
    description = "N charged particles under Coulomb forces; learnable Coulomb constant"
    ground_truth = {"coulomb": 50.0}
    separable = True  # the force reads positions only
    charges: Tensor  # a buffer: the fixed charge of each particle

    def __init__(self, params: ChargedParams | None = None) -> None:
        super().__init__(params)
        self.log_coulomb = log_parameter(self.params.coulomb, self.params.learnable)
        self.register_buffer("charges", torch.tensor(self.params.charges))

    def _geometry(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Pairwise q_i − q_j, softened distances and charge products, each over (..., N, N)."""
        diff = q.unsqueeze(-2) - q.unsqueeze(-3)
        dist = ((diff**2).sum(-1) + self.params.softening).sqrt()
        charge_products = self.charges.unsqueeze(-1) * self.charges.unsqueeze(-2)
        return diff, dist, charge_products

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        diff, dist, charge_products = self._geometry(q)
        # −∂V/∂q_i = k Σ_j q_i q_j (q_i − q_j) / d³: like charges push apart; the i = j term is zero
        coupling = charge_products / dist**3
        return self.log_coulomb.exp() * (coupling.unsqueeze(-1) * diff).sum(-2)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        _, dist, charge_products = self._geometry(q)
        n = q.shape[-2]
        pairs = torch.triu(torch.ones(n, n, dtype=torch.bool, device=q.device), diagonal=1)
        potential = (self.log_coulomb.exp() * charge_products / dist)[..., pairs].sum(-1)
        return 0.5 * (p**2).sum((-1, -2)) + potential

    def learned_parameters(self) -> dict[str, float]:
        return {"coulomb": self.log_coulomb.exp().item()}


class ChargedColorParams(BallTaskParams):
    speed: float = Field(1.5, ge=0, description="initial speed of each particle, px per unit time (near a circular "
                                                "orbit)")


class ChargedColor(BallTask[ChargedColorParams]):
    """Two opposite charges orbiting each other on black, PAIG-style balls: videos to learn the
    Coulomb constant from. A pair starts 8-14 px apart around the image centre, moving sideways."""

    name = "charged_color"
    description = "two opposite charges (Coulomb constant 50) drawn as coloured balls"
    physics = "charged_particles"
    preset = {
        "data": {"image_size": 32, "n_objects": 2, "input_steps": 4, "pred_steps": 6, "extrap_steps": 20, "dt": 0.3},
        "physics": {"name": "charged_particles", "charges": [1.0, -1.0]},
        "integrator": {"name": "leapfrog", "substeps": 5},
    }

    def sample_initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        centre = self.params.image_size / 2 + uniform(generator, (n, 1, 2), -3.0, 3.0)
        axis = unit_vectors(generator, (n, 1))
        half = uniform(generator, (n, 1, 1), 4.0, 7.0) * axis
        q = torch.cat([centre + half, centre - half], dim=1)
        sideways = torch.stack([-axis[..., 1], axis[..., 0]], dim=-1) * self.params.speed
        return q, torch.cat([sideways, -sideways], dim=1)


@hookimpl
def pivf_physics() -> list[type]:
    return [ChargedParticles]


@hookimpl
def pivf_tasks() -> list[type]:
    return [ChargedColor]
