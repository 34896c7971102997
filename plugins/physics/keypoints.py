"""A learned Hamiltonian over the objects' positions in the image, with the rods the video shows.

KeyCLD's idea (keypoints, a learned energy, known constraints) in Hamiltonian form, on the state
PAIG's encoder and decoder use: each object's pixel position q_i and velocity v_i (the pipeline's
p). The energy is learned, H = Σ ½ m_i |v_i|² + V(q), with V a network over the positions (or,
``potential: pairwise``, Σ φ(|q_i − q_j|) with one learned φ) and the masses learned relative to
the first object's (a common factor of the masses and V moves nothing). V reads the positions
centred on the image and in quarters of its side, and gives energies in (quarter sides)²: a unit
slope is a pull of a quarter side per time², so the network starts near the forces it must learn.

The scene's rigid links are holonomic constraints, not forces: a pendulum's rod pulls along itself
with whatever force keeps its length, which no smooth V can be. A rod ``pivot-i`` holds object i
at a fixed distance from a fixed pivot, a rod ``i-j`` two objects at a fixed distance. With J the
rods' Jacobian, M q̈ = −∇V + Jᵀλ, and λ solves J M⁻¹ Jᵀ λ = −(J̇ q̇ + J M⁻¹(−∇V)): the rods'
lengths neither grow nor shrink. After every integrator substep (``constrain``), the positions go
back onto the rods (mass-weighted corrections along each rod, a few sweeps, SHAKE's way) and the
velocities lose their part along them (v ← v − M⁻¹Jᵀ(J M⁻¹ Jᵀ)⁻¹ J v), as the rods' impulses would.

Which rods, ``rods``: ``auto`` finds them in ``prepare``, from where the encoder finds the objects
(before training, and again from the trained encoder once every object is found):
an object whose positions trace one circle hangs from a pivot (``fit_circle``, which also gives
the pivot and the length), two objects whose distance keeps within ``rigid_spread`` of its median
are joined. A list names them instead (``[pivot-0, 0-1]``: a double pendulum; ``[]``: free objects,
e.g. two bodies under gravity). Every candidate rod has its pivot and length as parameters from
the start, learned with the physical constants, so rods found after the optimiser exists train.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from pivf.api import ConfigError, ObjectParams, PhysicsSystem, energy_gradient, floored_length, hookimpl
from pivf.plugins.physics.hamiltonian import ACTIVATIONS, MLPEnergy, PairPotential
from pivf.plugins.physics.pivot_pendulum import fit_circle

__all__ = ["KeypointHamiltonian", "pivf_physics"]

#: position corrections per ``constrain``: each sweep moves every rod's ends back to its length
SWEEPS = 4
#: a rod shorter than this (pixels) is not believed: an untrained encoder's positions huddle together
MIN_ROD_PX = 2.0


class KeypointHamiltonianParams(ObjectParams):
    image_size: int = Field(32, ge=8, description="frame side in pixels (data.image_size): the scale V reads "
                                                  "positions at")
    rods: Literal["auto"] | list[str] = Field(
        "auto", description="the rigid rods: auto (found in the data: an object tracing a circle hangs from a "
                            "pivot, two objects at a fixed distance are joined) or a list of 'pivot-I' and 'I-J' "
                            "(empty: free objects)")
    potential: Literal["mlp", "pairwise"] = Field(
        "mlp", description="mlp: V over every coordinate; pairwise: V = Σ_{i<j} φ(|q_i − q_j|), one learned φ")
    hidden: list[int] = Field([64, 64], min_length=1, description="hidden layer widths of V's network")
    activation: Literal["softplus", "tanh", "swish"] = Field("swish", description="smooth nonlinearity of V")
    learn_masses: bool = Field(True, description="learn the masses relative to the first object's")
    rigid_spread: float = Field(0.05, gt=0, lt=1, description="auto: the largest robust spread of a distance, "
                                                              "relative to its median, that counts as a rod")

    @field_validator("rods")
    @classmethod
    def _rods_are_named(cls, rods: Literal["auto"] | list[str]) -> Literal["auto"] | list[str]:
        for rod in [] if rods == "auto" else rods:
            ends = rod.split("-")
            if len(ends) != 2 or not ends[1].isdigit() or not (ends[0] == "pivot" or ends[0].isdigit()):
                raise ValueError(f"rod '{rod}': allowed forms are 'pivot-I' and 'I-J' with object indices I, J")
        return rods


def candidate_rods(n_objects: int) -> list[tuple[int | None, int]]:
    """Every rod a scene of ``n_objects`` can have: a pivot to each object (None: the pivot), then each pair."""
    return [(None, i) for i in range(n_objects)] + list(itertools.combinations(range(n_objects), 2))


class KeypointHamiltonian(PhysicsSystem[KeypointHamiltonianParams]):
    name = "keypoint_hamiltonian"
    description = ("learned Hamiltonian over object positions with the scene's rods (found in the data or "
                   "named): pendulums, chains, free bodies")
    has_constraints = True

    incidence: Tensor  # (K, N): +1 at a rod's far end, −1 at its near object (none for a pivot)
    active: Tensor  # (K,): 1 for a rod the scene has (checkpointed; ``active_rods`` lists them)
    active_rods: list[int]

    def __init__(self, params: KeypointHamiltonianParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self.rods = candidate_rods(p.n_objects)
        incidence = torch.zeros(len(self.rods), p.n_objects)
        for k, (near, far) in enumerate(self.rods):
            incidence[k, far] = 1.0
            if near is not None:
                incidence[k, near] = -1.0
        self.register_buffer("incidence", incidence, persistent=False)
        self.register_buffer("active", self._declared())
        self._list_active()
        self.register_load_state_dict_post_hook(self._list_active)
        self.scale = p.image_size / 4
        self.pivots = nn.Parameter(torch.full((p.n_objects, p.dim), p.image_size / 2))
        self.log_lengths = nn.Parameter(torch.full((len(self.rods),), math.log(self.scale)))
        self.log_masses = nn.Parameter(torch.zeros(p.n_objects - 1), requires_grad=p.learn_masses)
        activation = ACTIVATIONS[p.activation]
        self.potential: nn.Module = (PairPotential(p.n_objects, p.hidden, activation) if p.potential == "pairwise"
                                     else MLPEnergy(p.n_objects * p.dim, p.hidden, activation, state_dims=2))

    @classmethod
    def constrained(cls, params: dict[str, Any]) -> bool:
        """Free objects (``rods: []``) have no constraints, so smooth ODE solvers may move them."""
        return params.get("rods", "auto") != []

    def _declared(self) -> Tensor:
        """The rods the params name (all zero for ``auto``, which ``prepare`` fills in)."""
        active = torch.zeros(len(self.rods))
        if self.params.rods == "auto":
            return active
        for rod in self.params.rods:
            near, far = rod.split("-")
            key = (None if near == "pivot" else int(near), int(far))
            if key[0] is not None and key[0] > key[1]:
                key = (key[1], key[0])
            if key not in self.rods:
                raise ConfigError(f"physics.rods: '{rod}' joins objects this scene of {self.params.n_objects} lacks")
            active[self.rods.index(key)] = 1.0
        return active

    def _list_active(self, *_: object) -> None:
        """The active rods' indices as a list, so no step reads the buffer back from a device."""
        self.active_rods = [k for k, on in enumerate(self.active.tolist()) if on]

    # --- the rods ------------------------------------------------------------------------------
    def masses(self) -> Tensor:
        return torch.cat([self.log_masses.new_zeros(1), self.log_masses]).exp()

    def _offset(self, q: Tensor, k: int) -> Tensor:
        """(..., D): rod k's far end minus its near end (its pivot or object)."""
        near, far = self.rods[k]
        return q[..., far, :] - (self.pivots[far].to(q.dtype) if near is None else q[..., near, :])

    def _rod_system(self, q: Tensor, inverse_mass: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The active rods' offsets (…, A, D), incidence (A, N) and J M⁻¹ Jᵀ (…, A, A)."""
        offsets = torch.stack([self._offset(q, k) for k in self.active_rods], -2)
        incidence = self.incidence[self.active_rods].to(q.dtype)
        coupling = (incidence * inverse_mass) @ incidence.T
        return offsets, incidence, torch.einsum("...kd,...ld->...kl", offsets, offsets) * coupling

    # --- the equations of motion -----------------------------------------------------------------
    def potential_energy(self, q: Tensor) -> Tensor:
        centred = (q - self.params.image_size / 2) / self.scale
        return self.scale**2 * self.potential(centred)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        kinetic = 0.5 * (self.masses().to(p.dtype)[:, None] * p**2).sum((-2, -1))
        return kinetic + self.potential_energy(q)

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        inverse_mass = 1 / self.masses().to(q.dtype)
        free = -energy_gradient(self.potential_energy, q) * inverse_mass[:, None]
        if not self.active_rods:
            return free
        offsets, incidence, system = self._rod_system(q, inverse_mass)
        relative = torch.einsum("kn,...nd->...kd", incidence, p)
        pull = torch.einsum("kn,...nd->...kd", incidence, free)
        demand = -((relative**2).sum(-1) + (offsets * pull).sum(-1))
        multipliers = torch.linalg.solve(system, demand)
        return free + torch.einsum("kn,...k,...kd->...nd", incidence, multipliers, offsets) * inverse_mass[:, None]

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        if not self.active_rods:
            return q, p
        inverse_mass = 1 / self.masses().to(q.dtype)
        lengths = self.log_lengths.exp().to(q.dtype)
        objects = list(q.unbind(-2))
        for _ in range(SWEEPS):
            for k in self.active_rods:
                near, far = self.rods[k]
                anchor = self.pivots[far].to(q.dtype) if near is None else objects[near]
                offset = objects[far] - anchor
                length = floored_length(offset)
                excess = (length - lengths[k]) * offset / length
                if near is None:
                    objects[far] = objects[far] - excess
                    continue
                total = inverse_mass[near] + inverse_mass[far]
                objects[far] = objects[far] - inverse_mass[far] / total * excess
                objects[near] = objects[near] + inverse_mass[near] / total * excess
        q = torch.stack(objects, -2)
        offsets, incidence, system = self._rod_system(q, inverse_mass)
        stretch = (offsets * torch.einsum("kn,...nd->...kd", incidence, p)).sum(-1)
        multipliers = torch.linalg.solve(system, stretch)
        return q, p - torch.einsum("kn,...k,...kd->...nd", incidence, multipliers, offsets) * inverse_mass[:, None]

    # --- what the data shows ---------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, positions: Tensor) -> None:
        """Each rod's pivot and length from the positions (B, T, N, D) where the data shows them, and
        with ``rods: auto`` which rods there are (see the module docs)."""
        auto = self.params.rods == "auto"
        if auto:
            self.active.zero_()
            self._list_active()
        for k, (near, far) in enumerate(self.rods):
            if near is None:
                found = fit_circle(positions[..., far, :].reshape(-1, positions.shape[-1]))
                if found is not None and found[1] >= MIN_ROD_PX:
                    self.pivots[far] = found[0].to(self.pivots)
                    self._set_rod(k, found[1], auto)
                continue
            distance = (positions[..., far, :] - positions[..., near, :]).norm(dim=-1).flatten()
            distance = distance[torch.isfinite(distance)]
            if len(distance) < 10:
                continue
            median = float(distance.median())
            spread = 1.4826 * float((distance - median).abs().median())
            if median >= MIN_ROD_PX and spread <= self.params.rigid_spread * median:
                self._set_rod(k, median, auto)

    def objects_found(self, positions: Tensor) -> None:
        """The rods again from the trained encoder's positions: the data-prepared encoder's can miss
        small or overlapping objects."""
        self.prepare(positions)

    def _set_rod(self, k: int, length: float, auto: bool) -> None:
        self.log_lengths[k] = math.log(length)
        if auto:
            self.active[k] = 1.0
            self._list_active()

    def learned_parameters(self) -> dict[str, float]:
        learned = {f"mass_{i}": float(mass) for i, mass in enumerate(self.masses().tolist()) if i > 0}
        for k, (near, far) in enumerate(self.rods):
            if k in self.active_rods:
                learned[f"rod_{'pivot' if near is None else near}_{far}"] = self.log_lengths[k].exp().item()
        return learned

    def physical_constants(self) -> list[nn.Parameter]:
        return [self.pivots, self.log_lengths, self.log_masses]


@hookimpl
def pivf_physics() -> list[type]:
    return [KeypointHamiltonian]
