"""Semi-implicit (symplectic) Euler with substeps, velocity first then position, as PAIG uses it."""
from __future__ import annotations

from torch import Tensor

from pivf.api import Flow, Integrator, hookimpl

__all__ = ["SemiImplicitEuler", "pivf_integrators"]


class SemiImplicitEuler(Integrator):
    name = "euler"
    description = "semi-implicit Euler with substeps (p then q), PAIG's engine; order 1, symplectic"
    order = 1
    symplectic = True
    time_reversible = False

    def step(self, physics: Flow, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        p = p + h * physics.dp_dt(q, p)
        q = q + h * physics.dq_dt(q, p)
        return q, p


@hookimpl
def pivf_integrators() -> list[type]:
    return [SemiImplicitEuler]
