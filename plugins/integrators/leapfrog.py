"""Störmer–Verlet leapfrog (kick-drift-kick) in the partitioned form HGN's Hamiltonians need.

The drift uses ``physics.dq_dt`` (∂H/∂p), never "velocity = p": with a learned, non-quadratic
kinetic term the shortcut integrates a different flow than the Hamiltonian's own. For separable
H(q, p) = T(p) + V(q) the scheme is symplectic, time-reversible and of order 2.

For a system that says it is ``separable`` (and has no constraints or controls), the closing
kick's force is the next step's opening force, so a rollout evaluates ∂V/∂q once per step, not twice
("first same as last"). For a learned Hamiltonian that is a third of its network evaluations.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pivf.api import Flow, Integrator, PhysicsSystem, frame_intervals, hookimpl

__all__ = ["Leapfrog", "kick_drift_kick", "pivf_integrators"]


def kick_drift_kick(physics: Flow, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
    """One leapfrog step of size ``h``; also the building block of higher-order compositions."""
    p = p + 0.5 * h * physics.dp_dt(q, p)
    q = q + h * physics.dq_dt(q, p)
    p = p + 0.5 * h * physics.dp_dt(q, p)
    return q, p


class Leapfrog(Integrator):
    name = "leapfrog"
    description = "Störmer–Verlet kick-drift-kick with dq/dt = ∂H/∂p; order 2, symplectic, reversible"
    order = 2
    symplectic = True
    time_reversible = True

    def step(self, physics: Flow, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        return kick_drift_kick(physics, q, p, h)

    def rollout(self, physics: PhysicsSystem, q0: Tensor, p0: Tensor, t: Tensor,
                controls: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if controls is not None or physics.has_constraints or not physics.separable:
            return super().rollout(physics, q0, p0, t, controls)
        intervals = frame_intervals(t)
        qs, ps = [q0], [p0]
        if not intervals:
            return torch.stack(qs), torch.stack(ps)
        q, p = q0, p0
        force = physics.dp_dt(q, p)
        for dt in intervals:
            h = dt / self.substeps
            for _ in range(self.substeps):
                p = p + 0.5 * h * force
                q = q + h * physics.dq_dt(q, p)
                force = physics.dp_dt(q, p)
                p = p + 0.5 * h * force
            qs.append(q)
            ps.append(p)
        return torch.stack(qs), torch.stack(ps)


@hookimpl
def pivf_integrators() -> list[type]:
    return [Leapfrog]
