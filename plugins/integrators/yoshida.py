"""Yoshida's 4th-order symplectic integrator: three leapfrog steps of sizes w1·h, w0·h, w1·h.

A symmetric composition of a symmetric order-2 method with these weights cancels the h³ error
term, so it inherits symplecticity and time reversibility from leapfrog (Yoshida 1990).
"""
from __future__ import annotations

from torch import Tensor

from pivf.api import Flow, Integrator, hookimpl
from pivf.plugins.integrators.leapfrog import kick_drift_kick

__all__ = ["Yoshida", "pivf_integrators"]

W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
W0 = -(2.0 ** (1.0 / 3.0)) * W1
WEIGHTS = (W1, W0, W1)


class Yoshida(Integrator):
    name = "yoshida"
    description = "Yoshida 4th-order composition of leapfrog; order 4, symplectic, reversible"
    order = 4
    symplectic = True
    time_reversible = True

    def step(self, physics: Flow, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        for w in WEIGHTS:
            q, p = kick_drift_kick(physics, q, p, w * h)
        return q, p


@hookimpl
def pivf_integrators() -> list[type]:
    return [Yoshida]
