"""torchdiffeq's solvers as integrator plugins, one class per method, generated from two tables.

The state goes to ``odeint`` as the tuple ``(q, p)``. By default every frame interval is its own
``odeint`` call (``solve="per_interval"``): torchdiffeq writes its outputs into one preallocated
tensor, and backward through those indexed writes grows quadratically with the number of output
times, which for video are the frames (docs/BENCHMARKS.md: at batch 65536 and 120 frames, one call
over all frames takes 27 times longer forward+backward than a call per interval).
Fixed-step methods get their grid as a ``grid_constructor`` of ``substeps`` equal steps per interval
rather than as ``step_size``: torchdiffeq builds a ``step_size`` grid with
``ceil(span / step_size + 1)`` points, and where rounding leaves the quotient a hair above an
integer (common with float32 frame times) it silently adds an extra, tiny step.

``adjoint=True`` backpropagates with ``odeint_adjoint``: memory no longer grows with the number of
steps, at the cost of a second solve backwards in time. The physics' parameters are handed over as
``adjoint_params``, so the adjoint pass returns their gradients too.

None of these can apply ``physics.constrain`` between steps, so they refuse systems with hard
constraints (``supports_constraints = False``).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

import torch
from pydantic import Field
from torch import Tensor
from torchdiffeq import odeint, odeint_adjoint

from pivf.api import Flow, Integrator, IntegratorParams, PhysicsSystem, frame_intervals, hookimpl

__all__ = ["pivf_integrators"]

Solve = Literal["per_interval", "once"]


class TorchdiffeqParams(IntegratorParams):
    adjoint: bool = Field(False, description="backpropagate by the adjoint method (memory independent of steps)")
    solve: Solve = Field("per_interval", description="one odeint call per frame interval, or one over all frame times")


#: the finest tolerance an adaptive solver is asked for: float64 rounding (1e-16) stops a finer one
#: from being met, and the controller would shrink its steps until they underflow
MIN_TOLERANCE = 1e-12


class AdaptiveParams(TorchdiffeqParams):
    rtol: float = Field(1e-5, ge=MIN_TOLERANCE, description="relative tolerance of the step-size controller")
    atol: float = Field(1e-6, ge=MIN_TOLERANCE, description="absolute tolerance of the step-size controller")


TDP = TypeVar("TDP", bound=TorchdiffeqParams)


class TorchdiffeqIntegrator(Integrator[TDP]):
    """Common driver: subclasses say which torchdiffeq ``method`` and which solver arguments."""

    Params = TorchdiffeqParams
    #: the torchdiffeq method name (its key in ``torchdiffeq._impl.odeint.SOLVERS``)
    method: ClassVar[str] = ""
    supports_constraints = False

    def solver_kwargs(self, times: Tensor) -> dict[str, Any]:
        """``rtol``/``atol``/``options`` for an ``odeint`` call over ``times``."""
        raise NotImplementedError

    def advance(self, physics: Flow, q: Tensor, p: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        times = torch.tensor([0.0, dt], dtype=torch.float64, device=q.device)
        qs, ps = self.solve(physics, q, p, times)
        return qs[-1], ps[-1]

    def rollout(self, physics: PhysicsSystem, q0: Tensor, p0: Tensor, t: Tensor,
                controls: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Held controls change the field at every frame, so with them each interval is its own solve,
        whose field is the physics under that interval's input."""
        intervals = frame_intervals(t)
        if self.params.solve == "per_interval" or not intervals or controls is not None:
            return super().rollout(physics, q0, p0, t, controls)
        times = t.detach().to(device=q0.device, dtype=torch.float64)
        return self.solve(physics, q0, p0, times)

    def solve(self, physics: Flow, q: Tensor, p: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        """States at every time in ``times`` by one ``odeint`` call (time-major, like ``rollout``)."""
        def field(_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            return physics.derivatives(*state)

        kwargs = {"method": self.method, **self.solver_kwargs(times)}
        if self.params.adjoint:
            return odeint_adjoint(field, (q, p), times, adjoint_params=tuple(physics.parameters()), **kwargs)
        return odeint(field, (q, p), times, **kwargs)


class FixedGridIntegrator(TorchdiffeqIntegrator[TorchdiffeqParams]):
    def solver_kwargs(self, times: Tensor) -> dict[str, Any]:
        return {"options": {"grid_constructor": self.grid}}

    def grid(self, _func: object, _y0: Tensor, t: Tensor) -> Tensor:
        """``substeps`` equal steps in every interval of ``t``, landing exactly on each time in it."""
        frac = torch.arange(self.substeps, dtype=t.dtype, device=t.device) / self.substeps
        inner = t[:-1, None] + (t[1:] - t[:-1])[:, None] * frac
        return torch.cat([inner.reshape(-1), t[-1:]])


class AdaptiveIntegrator(TorchdiffeqIntegrator[AdaptiveParams]):
    """The controller picks its own steps; ``substeps`` only sets the first trial step, which saves
    torchdiffeq's initial-step search (two extra evaluations of the field per call).

    The solver must step onto every frame time (``step_t``): otherwise torchdiffeq reads frames off
    its 4th-order interpolant, whose error dominates for large steps (dopri8 at rtol=atol=1e-12
    then misses the solution by 1e-7 on a harmonic oscillator; stepping onto frames gives 1e-13).
    """


    def solver_kwargs(self, times: Tensor) -> dict[str, Any]:
        first_step = (times[1] - times[0]).abs() / self.substeps
        return {"rtol": self.params.rtol, "atol": self.params.atol,
                "options": {"first_step": first_step, "step_t": times}}


#: plugin name -> (torchdiffeq method, order, note); "euler" is taken by the symplectic plugin
FIXED_GRID: dict[str, tuple[str, int, str]] = {
    "explicit_euler": ("euler", 1, "explicit Euler"),
    "midpoint": ("midpoint", 2, "explicit midpoint"),
    "heun2": ("heun2", 2, "Heun's trapezoidal method"),
    "heun3": ("heun3", 3, "Heun's third-order method"),
    "rk4": ("rk4", 4, "Runge–Kutta 3/8 rule"),
}
#: torchdiffeq's fehlberg2 is left out: on a harmonic oscillator its controller misses the requested
#: tolerance by a factor of about 500, so rtol/atol would not mean what they say
ADAPTIVE: dict[str, tuple[str, int, str]] = {
    "adaptive_heun": ("adaptive_heun", 2, "Heun–Euler 2(1)"),
    "bosh3": ("bosh3", 3, "Bogacki–Shampine 3(2)"),
    "dopri5": ("dopri5", 5, "Dormand–Prince 5(4)"),
    "dopri8": ("dopri8", 8, "Dormand–Prince 8(7)"),
}


def _plugin_class(name: str, method: str, order: int, note: str, base: type[TorchdiffeqIntegrator]) -> type:
    kind = "adaptive step, rtol/atol" if issubclass(base, AdaptiveIntegrator) else "fixed step"
    class_name = "Torchdiffeq" + "".join(part.title() for part in name.split("_"))
    return type(class_name, (base,), {
        "__module__": __name__,
        "__qualname__": class_name,
        "name": name,
        "method": method,
        "order": order,
        "description": f"torchdiffeq {method}: {note} ({kind}); order {order}",
    })


PLUGINS: list[type] = [
    *(_plugin_class(name, *row, FixedGridIntegrator) for name, row in FIXED_GRID.items()),
    *(_plugin_class(name, *row, AdaptiveIntegrator) for name, row in ADAPTIVE.items()),
]


@hookimpl
def pivf_integrators() -> list[type]:
    return PLUGINS
