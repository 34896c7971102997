"""Störmer–Verlet leapfrog (kick-drift-kick) in the partitioned form HGN's Hamiltonians need.

The drift uses ``physics.dq_dt`` (∂H/∂p), never "velocity = p": with a learned, non-quadratic
kinetic term the shortcut integrates a different flow than the Hamiltonian's own. For separable
H(q, p) = T(p) + V(q) the scheme is symplectic, time-reversible and of order 2.
"""
from __future__ import annotations

from torch import Tensor

from pivf.core.hookspecs import hookimpl
from pivf.core.integrator import Integrator
from pivf.core.physics import PhysicsSystem


def kick_drift_kick(physics: PhysicsSystem, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
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

    def step(self, physics: PhysicsSystem, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        return kick_drift_kick(physics, q, p, h)


@hookimpl
def pivf_integrators() -> list[type]:
    return [Leapfrog]
