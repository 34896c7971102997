"""A pendulum as a camera sees it: the bob's pixel position swinging about a pivot in the image.

The state is what the PAIG pipeline's encoder and decoder use, object coordinates: q (B, 1, 2) is
the bob's position in pixels and p its velocity. Image rows grow downwards, so gravity pulls
towards +y. With r = q − c from the pivot c, r̂ = r/|r| and the tangential velocity
v = p − (p·r̂)r̂:

    dq/dt = p
    dp/dt = ω²ℓ (ŷ − (ŷ·r̂)r̂) − (|v|²/|r|) r̂ − b v

the tangential pull of gravity, the rod's centripetal force and a viscous damping b of the swing:
on the circle, θ̈ = −ω² sin θ − b θ̇ for the angle θ from the downward vertical.

Actuated (one control input u, a motor's torque at the pivot): θ̈ gains a·u, with a learnable
actuation coefficient a (torque per unit input over the moment of inertia, 1/time²). θ grows from
the downward vertical towards +x (the image's right), so dp/dt gains a·u·ℓ·t̂ with t̂ = (r̂_y, −r̂_x);
the sign of a is learned with its size, so a motor that turns the other way has a < 0. The input
is ``dp_dt``'s argument u (B, 1); without controls (u None) the term is zero.

After every integrator substep the rod is made rigid again (``constrain``): q goes back onto the circle
|q − c| = ℓ and p loses its radial part, as a rod's impulse would take it. So a velocity estimate's
radial error is dropped in the first substep and no integrator lets the rod stretch. Leapfrog is
second-order without damping and, with it, first-order with a small constant; semi-implicit Euler
is first-order with a much larger one (leapfrog with 5 substeps is within 0.12 px of the exact swing
over 30 frames where Euler needs 100 for 0.08 px; tests/test_physics.py): prefer leapfrog.
Adaptive ODE solvers, which cannot apply the constraint, are refused.

What video identifies: ω² = g/L (1/time², from the timing alone, whatever the camera's scale), the
pivot c and the rod's length ℓ in pixels (from the circle the bob traces), b, and under recorded
controls a. With g known, the real length follows as L = g/ω², and a·L² is the torque per unit
input over the bob's mass.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from pivf.api import ConfigError, ObjectParams, PhysicsSystem, Quantity, floored_length, hookimpl, log_parameter

__all__ = ["PivotPendulum", "fit_circle", "pivf_physics"]


class PivotPendulumParams(ObjectParams):
    n_objects: Literal[1] = Field(1, description="objects (data.n_objects; exactly 1)")
    g_over_l: float = Field(1.0, gt=0, description="initial ω² = g/L, in 1/time² of the data's dt")
    length: float = Field(8.0, gt=0, description="initial rod length ℓ in pixels")
    pivot: tuple[float, float] = Field((16.0, 16.0), description="initial pivot (x, y) in pixels")
    damping: float = Field(0.0, description="initial damping rate b, in 1/time")
    learnable: bool = Field(True, description="learn ω²")
    learn_geometry: bool = Field(True, description="learn the pivot and ℓ; false keeps the given ones (known pivot)")
    fit_geometry: bool = Field(True, description="start the pivot and ℓ from a circle fitted to the positions the "
                                                 "prepared encoder finds in training frames, where the fit is "
                                                 "sound (learn_geometry only)")
    learn_damping: bool = Field(True, description="learn b")
    actuation: float = Field(0.0, description="initial actuation coefficient a: θ̈ gains a·u for the input u")
    learn_actuation: bool = Field(False, description="learn a (for data recorded under controls)")


class PivotPendulum(PhysicsSystem[PivotPendulumParams]):
    name = "pivot_pendulum"
    description = "a pendulum's bob in pixel coordinates about a pivot; learnable g/L, damping, pivot and length"
    has_constraints = True
    conservative = False
    ground_truth = {"g_over_l": 1.0, "damping": 0.0}
    units = {"g_over_l": "1/s^2", "damping": "1/s", "actuation": "1/s^2", "length": "px", "pivot_x": "px",
             "pivot_y": "px"}
    n_controls = 1

    def __init__(self, params: PivotPendulumParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self.log_g_over_l = log_parameter(p.g_over_l, p.learnable)
        self.log_length = log_parameter(p.length, p.learn_geometry)
        self.pivot = nn.Parameter(torch.tensor(p.pivot), requires_grad=p.learn_geometry)
        self.damping = nn.Parameter(torch.tensor(p.damping), requires_grad=p.learn_damping)
        self.actuation = nn.Parameter(torch.tensor(p.actuation), requires_grad=p.learn_actuation)

    def _radial(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """|r| (..., 1) and r̂ (..., 2) for the bob at q."""
        r = q - self.pivot.to(q.dtype)
        radius = floored_length(r)  # a bob estimated at the pivot keeps a finite direction and gradient
        return radius, r / radius

    def _turning(self, direction: Tensor) -> Tensor:
        """t̂ = (r̂_y, −r̂_x), the direction the bob moves in as θ grows."""
        return torch.stack((direction[..., 1], -direction[..., 0]), -1)

    def _tangential(self, p: Tensor, direction: Tensor) -> Tensor:
        return p - (p * direction).sum(-1, keepdim=True) * direction

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p

    def dp_dt(self, q: Tensor, p: Tensor, u: Tensor | None = None) -> Tensor:
        radius, direction = self._radial(q)
        v = self._tangential(p, direction)
        down = torch.zeros_like(direction)
        down[..., 1] = 1.0
        gravity = (self.log_g_over_l + self.log_length).exp() * self._tangential(down, direction)
        centripetal = (v**2).sum(-1, keepdim=True) / radius * direction
        accel = gravity - centripetal - self.damping * v
        if u is None:
            return accel
        torque = self.actuation * self.log_length.exp() * u.to(q.dtype)[:, None, :]
        return accel + torque * self._turning(direction)

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        _, direction = self._radial(q)
        return self.pivot.to(q.dtype) + self.log_length.exp() * direction, self._tangential(p, direction)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        """Energy per unit mass in pixel units (conserved when b = 0): ½|v|² + ω²ℓ·(height above the
        lowest point), the height measured upwards, against the image's rows."""
        radius, direction = self._radial(q)
        v = self._tangential(p, direction)
        height = self.log_length.exp() - (q[..., 1] - self.pivot[1].to(q.dtype))
        potential = (self.log_g_over_l + self.log_length).exp() * height
        return (0.5 * (v**2).sum(-1) + potential).sum(-1)

    def angle(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """(θ, θ̇) of the bob, θ from the downward vertical towards +x, each of shape q.shape[:-2]."""
        radius, direction = self._radial(q)
        angle = torch.atan2(direction[..., 0], direction[..., 1])
        return angle[..., 0], ((p * self._turning(direction)).sum(-1, keepdim=True) / radius)[..., 0, 0]

    def set_learned(self, name: str, value: float) -> None:
        logged = {"g_over_l": self.log_g_over_l, "length": self.log_length}
        plain = {"damping": self.damping, "actuation": self.actuation}
        if name not in logged and name not in plain:
            raise ConfigError(f"physics '{self.name}': cannot set '{name}'; allowed: {', '.join([*logged, *plain])}")
        if name in logged and value <= 0:
            raise ConfigError(f"physics '{self.name}': {name} must be positive, got {value:g}")
        with torch.no_grad():
            if name in logged:
                logged[name].fill_(math.log(value))
            else:
                plain[name].fill_(value)

    @torch.no_grad()
    def prepare(self, positions: Tensor) -> None:
        """The pivot and ℓ from the circle the bob's positions trace (``fit_circle``), when the
        params ask for it and the fit is sound: every swing shows the rod's length and pivot, which
        gradient descent on the motion alone finds only slowly, biasing ω² on the way."""
        if not (self.params.fit_geometry and self.params.learn_geometry):
            return
        found = fit_circle(positions[..., 0, :].reshape(-1, 2))
        if found is not None:
            centre, radius = found
            self.pivot.copy_(centre.to(self.pivot))
            self.log_length.fill_(math.log(radius))

    def physical_quantities(self, gravity: float) -> dict[str, Quantity]:
        """The rod's length from the timing alone, L = g/ω², which needs no pixel scale; compared with
        a known ``length``, as the length from the image (ℓ in pixels times the scale) is."""
        if not self.params.learnable:
            return {}
        return {"length_from_timing": Quantity(gravity / self.log_g_over_l.exp().item(), "m", known="length")}

    def learned_parameters(self) -> dict[str, float]:
        learned = {}
        if self.params.learnable:
            learned["g_over_l"] = self.log_g_over_l.exp().item()
        if self.params.learn_damping:
            learned["damping"] = self.damping.item()
        if self.params.learn_actuation:
            learned["actuation"] = self.actuation.item()
        if self.params.learn_geometry:
            learned.update(length=self.log_length.exp().item(), pivot_x=self.pivot[0].item(),
                           pivot_y=self.pivot[1].item())
        return learned

    def state_shape(self) -> tuple[int, ...]:
        return (1, 2)


#: a circle fit is kept when its points lie this close to it (px, root mean square)...
CIRCLE_RMS = 1.0
#: ... and they span at least this arc of it (rad, as their extent over the radius): a short arc fits a
#: circle of any size
CIRCLE_ARC = 0.4


def _kasa(points: Tensor) -> tuple[Tensor, Tensor] | None:
    """Centre (2,) and radius of the algebraic least-squares circle x² + y² + Dx + Ey + F = 0."""
    design = torch.cat([points, torch.ones_like(points[:, :1])], -1)
    solution = torch.linalg.lstsq(design, -(points**2).sum(-1, keepdim=True)).solution[:, 0]
    centre = -solution[:2] / 2
    squared = (centre**2).sum() - solution[2]
    return (centre, squared.sqrt()) if squared > 0 else None


def _geometric(points: Tensor, start: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Gauss-Newton on the distances Σ(|p − c| − r)² from ``start``: Kåsa's circle is biased small
    where noise scatters the points about a short arc."""
    centre, radius = start
    for _ in range(10):
        offset = points - centre
        distance = offset.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        jacobian = torch.cat([-offset / distance, -torch.ones_like(distance)], -1)
        step = torch.linalg.lstsq(jacobian, -(distance - radius)).solution[:, 0]
        centre, radius = centre + step[:2], radius + step[2]
    return centre, radius


def fit_circle(points: Tensor) -> tuple[Tensor, float] | None:
    """The centre (2,) and radius of the circle through ``points`` (N, 2): Kåsa's algebraic least
    squares to start, then the least squares of the distances, a few times over the points within
    three robust standard deviations of the last fit (frames where the encoder found something
    else drop out); None when the points do not trace a circle well: too few, too far from it
    (``CIRCLE_RMS`` px and 5 % of the radius) or on too short an arc of it (``CIRCLE_ARC``)."""
    points = points[torch.isfinite(points).all(-1)].double()
    found = _kasa(points) if len(points) >= 10 else None
    kept = points
    for _ in range(5):
        if found is None or len(kept) < 10:
            return None
        distance = ((points - found[0]).norm(dim=-1) - found[1]).abs()
        kept = points[distance <= 3 * 1.4826 * distance.median()]
        found = _geometric(kept, found)
    if found is None:
        return None
    centre, radius = found
    rms = float(((kept - centre).norm(dim=-1) - radius).pow(2).mean().sqrt())
    chord = float((kept.amax(0) - kept.amin(0)).norm())  # the arc's extent: about radius × angle
    if rms > min(CIRCLE_RMS, 0.05 * float(radius)) or chord < CIRCLE_ARC * float(radius):
        return None
    return centre.float(), float(radius)


@hookimpl
def pivf_physics() -> list[type]:
    return [PivotPendulum]
