"""The contract of an integrator: roll a physics system from ``(q0, p0)`` through frame times ``t``.

Each frame interval is split into ``substeps`` equal steps; outputs are time-major ``(T, *q0.shape)``
with ``T = len(t)`` and the first entry the initial state. States are collected in a list and stacked
once: writing into a preallocated tensor makes backward quadratic in the number of frames.

``controls`` (T − 1, B, m), when given, are an actuated system's inputs, one per frame interval:
interval i is crossed by ``physics.under(controls[i])``, the equations with that input bound, so it
is held over the interval's substeps as a controller that acts once per frame holds it. ``step`` and
``advance`` therefore receive a ``Flow`` (the physics, or the physics under an input).
"""
from __future__ import annotations

from typing import ClassVar, TypeVar

import torch
from pydantic import Field
from torch import Tensor

from pivf.core.kernel.physics import Flow, PhysicsSystem
from pivf.core.kernel.plugin import Plugin, PluginParams

__all__ = ["Integrator", "IntegratorParams", "frame_intervals"]


#: substeps a frame interval may be split into: each multiplies the work of every rollout, and a
#: mistyped count (1e8) would run until killed
MAX_SUBSTEPS = 1000


class IntegratorParams(PluginParams):
    substeps: int = Field(5, ge=1, le=MAX_SUBSTEPS, description="integration steps per frame interval")


IP = TypeVar("IP", bound=IntegratorParams)


class Integrator(Plugin[IP]):
    """Base for integrator plugins; a fixed-step method only overrides ``step``."""

    kind: ClassVar[str] = "integrator"
    required_methods = (("step",), ("rollout",))
    Params = IntegratorParams
    #: global order of accuracy, checked by a convergence test
    order: ClassVar[int] = 1
    symplectic: ClassVar[bool] = False
    time_reversible: ClassVar[bool] = False
    #: False for methods that cannot apply ``physics.constrain`` between steps (adaptive ODE solvers)
    supports_constraints: ClassVar[bool] = True

    @property
    def substeps(self) -> int:
        return self.params.substeps

    def step(self, physics: Flow, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        """One step of size ``h`` (negative runs time backwards)."""
        raise NotImplementedError

    def advance(self, physics: Flow, q: Tensor, p: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        """Move the state across one frame interval of length ``dt``."""
        h = dt / self.substeps
        for _ in range(self.substeps):
            q, p = self.step(physics, q, p, h)
            q, p = physics.constrain(q, p)
        return q, p

    def rollout(self, physics: PhysicsSystem, q0: Tensor, p0: Tensor, t: Tensor,
                controls: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """States at every time in ``t`` (a 1-D tensor), starting from ``(q0, p0)`` at ``t[0]``;
        ``controls`` (len(t) − 1, B, m) as the module docs say."""
        intervals = frame_intervals(t)
        check_controls(controls, len(intervals))
        qs, ps = [q0], [p0]
        q, p = q0, p0
        for i, dt in enumerate(intervals):
            q, p = self.advance(physics.under(None if controls is None else controls[i]), q, p, dt)
            qs.append(q)
            ps.append(p)
        return torch.stack(qs), torch.stack(ps)

    def describe(self) -> dict[str, object]:
        return {"order": self.order, "symplectic": self.symplectic, "time_reversible": self.time_reversible}


def check_controls(controls: Tensor | None, intervals: int) -> None:
    if controls is not None and controls.shape[0] < intervals:
        raise ValueError(f"{intervals} frame intervals but controls for {controls.shape[0]}")


def frame_intervals(t: Tensor) -> list[float]:
    """Frame intervals as Python floats: read once per rollout, so no device sync happens per step."""
    if t.ndim != 1 or t.numel() < 1:
        raise ValueError(f"t must be a 1-D tensor of frame times, got shape {tuple(t.shape)}")
    return torch.diff(t.detach().to("cpu", torch.float64)).tolist()
