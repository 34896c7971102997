"""The contract of a physics system: the equations of motion the pipeline integrates.

State is ``(q, p)``. For known-equation systems q are object positions and p their velocities,
shape ``(B, N, D)``, in image pixel units (x = column, y = row). For latent systems (HGN) q and p are
canonical coordinates of any shape, e.g. ``(B, 16, 4, 4)``.

A system defines either ``dq_dt``/``dp_dt`` directly or a ``hamiltonian``; then the derivatives follow
by autograd (with ``create_graph`` while training so the loss reaches H's weights). Integrators call
``dq_dt`` and ``dp_dt`` separately so symplectic schemes use the partitioned form
dq/dt = ∂H/∂p, dp/dt = −∂H/∂q, never "velocity = p".

An actuated system (a motor's torque, a thruster) declares ``n_controls`` > 0 and takes the input
as an argument of its forces, ``dp_dt(q, p, u=None)``: u (B, n_controls) is the input applied over
the current frame interval, None zero input. Integrators step ``physics.under(u)``, the equations
with one interval's input bound (``Driven``), so the input stays constant across the interval's
substeps and nothing is set on the system between calls. Controls enter the forces only, never
``dq_dt`` or ``hamiltonian``: an actuated flow does not conserve energy.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, cast

import torch
from pydantic import Field
from torch import Tensor, nn

from pivf.core.kernel.errors import ConfigError
from pivf.core.kernel.plugin import P, Plugin, PluginParams
from pivf.core.kernel.units import Quantity

__all__ = ["Actuated", "Driven", "Flow", "ObjectParams", "PhysicsSystem", "StateKind", "energy_gradient",
           "floored_length", "log_parameter"]

#: "objects": (B, N, D) pixel coordinates an object decoder can draw; "generalized": coordinates
#: such as angles, which need a task's renderer; "latent": abstract maps inferred by an encoder
StateKind = Literal["objects", "generalized", "latent"]


class Flow(Protocol):
    """What an integrator steps across a frame interval: a ``PhysicsSystem``, or one under an input
    (``Driven``)."""

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor: ...

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor: ...

    def derivatives(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]: ...

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]: ...

    def parameters(self) -> Iterator[nn.Parameter]:
        """The learnable parameters the equations read (adjoint solvers return their gradients)."""


class Actuated(Protocol):
    """What a system with ``n_controls`` > 0 promises: forces that take an input u (B, n_controls),
    None meaning zero input."""

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor: ...

    def dp_dt(self, q: Tensor, p: Tensor, u: Tensor | None = None) -> Tensor: ...

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


class PhysicsSystem(Plugin[P], nn.Module):
    """Base class for physics plugins (an ``nn.Module`` so its physical parameters can be learned)."""

    kind: ClassVar[str] = "physics"
    required_methods = (("hamiltonian",), ("dq_dt", "dp_dt"))
    #: what q is (see ``StateKind``); encoders and decoders declare which kinds they handle
    state: ClassVar[StateKind] = "objects"
    #: values used to generate data; the params model holds the *initial* values a learner starts from
    ground_truth: ClassVar[dict[str, float]] = {}
    #: True when ``constrain`` changes the state (e.g. wall bounces), which smooth ODE solvers cannot honour
    has_constraints: ClassVar[bool] = False
    #: True when the flow conserves ``energy`` (no damping, no actuation)
    conservative: ClassVar[bool] = True
    #: control inputs per sample ``dp_dt`` takes as its argument ``u`` (0: not actuated)
    n_controls: ClassVar[int] = 0
    #: the dimension of each of ``learned_parameters`` in pixels and the data's time unit ("px",
    #: "1/s^2", "px^3/s^2"), so a dataset with a known scale reports them in metres (``core.kernel.units``)
    units: ClassVar[dict[str, str]] = {}

    @classmethod
    def constrained(cls, params: dict[str, Any]) -> bool:
        """Whether a system of these params has constraints (``has_constraints``, unless the params
        can switch them off), asked before anything is built: smooth solvers are refused for it."""
        return cls.has_constraints

    # --- the equations of motion -------------------------------------------------------------
    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        """Energy per sample, shape ``(B,)``. Define it to get the derivatives by autograd."""
        raise NotImplementedError(f"physics '{self.name}' defines no Hamiltonian")

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return self._hamiltonian_grad(q, p, wrt="p")

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return -self._hamiltonian_grad(q, p, wrt="q")

    def derivatives(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        return self.dq_dt(q, p), self.dp_dt(q, p)

    def under(self, u: Tensor | None) -> Flow:
        """The equations with the input ``u`` (B, n_controls) held, for one frame interval; None: the
        system itself (zero input)."""
        if u is None:
            return self
        if u.shape[-1] != self.n_controls:
            raise ValueError(f"physics '{self.name}' takes {self.n_controls} control inputs, got {u.shape[-1]}")
        return Driven(cast(Actuated, self), u)  # n_controls > 0 promises forces that take u

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """Applied after every integrator substep; identity unless the system has hard constraints."""
        return q, p

    @property
    def separable(self) -> bool:
        """True when dp/dt reads q alone and dq/dt reads p alone (H = T(p) + V(q), no friction), so
        an integrator may carry a force from the end of one step to the start of the next (leapfrog
        then evaluates it once per step instead of twice). False, the safe answer, unless a system
        says otherwise."""
        return False

    # --- diagnostics and reports ---------------------------------------------------------------
    def energy(self, q: Tensor, p: Tensor) -> Tensor:
        """Total energy per sample, ``(B,)`` (for a batch of time steps, any leading shape)."""
        return self.hamiltonian(q, p)

    def learned_parameters(self) -> dict[str, float]:
        """Learnable physical parameters in physical units (e.g. ``{"k": 4.1}``)."""
        return {}

    def prepare(self, positions: Tensor) -> None:
        """Data-dependent initial constants, once before a new run's first step, from where the
        data-prepared encoder finds the objects in training frames: positions (B, T, K, dim) in
        pixels. For what a picture shows outright (a pendulum's pivot and rod trace a circle), so
        that what only the motion tells (ω², damping) is learned against the right geometry.
        Default: nothing."""

    def objects_found(self, positions: Tensor) -> None:
        """Called once when training has found every object, with where the trained encoder puts
        them in the last batch: positions (B, T, K, dim) in pixels. For a physics that reads its
        structure from the positions (which objects hang from a pivot, which are joined), where a
        data-prepared encoder's early guesses can be too rough. Default: nothing."""

    def physical_quantities(self, gravity: float) -> dict[str, Quantity]:
        """Physical quantities the learned parameters give with the local ``gravity`` (m/s²) known,
        which no pixel scale gives: a pendulum's length from its timing. Default: none."""
        return {}

    def physical_constants(self) -> list[nn.Parameter]:
        """The parameters that are physical constants (k, g, masses), which ``training.physics_lr``
        drives; a network's weights are not, and train at the base rate."""
        return list(self.parameters())

    def set_learned(self, name: str, value: float) -> None:
        """Set a learned parameter, named and in the units of ``learned_parameters``: the zero-shot
        edit of a model to a changed system (a heavier bob, a stronger motor)."""
        raise ConfigError(f"physics '{self.name}' has no parameters that can be set")

    def state_shape(self) -> tuple[int, ...]:
        """Shape of one sample's q (and p), for samplers and shape checks: (n_objects, dim) for a
        system of objects (``ObjectParams``), so its author need not say it; () when free."""
        if isinstance(self.params, ObjectParams):
            return (self.params.n_objects, self.params.dim)
        return ()

    # --- helpers for subclasses ----------------------------------------------------------------
    def _hamiltonian_grad(self, q: Tensor, p: Tensor, wrt: str) -> Tensor:
        if wrt == "p":
            return energy_gradient(lambda p_: self.hamiltonian(q, p_), p)
        return energy_gradient(lambda q_: self.hamiltonian(q_, p), q)


@dataclass(frozen=True)
class Driven:
    """An actuated system's equations with one frame interval's input bound: made per interval by
    ``PhysicsSystem.under``, so the input is an argument of the forces, never state of the system."""

    physics: Actuated
    u: Tensor  # (B, n_controls)

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return self.physics.dq_dt(q, p)

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return self.physics.dp_dt(q, p, self.u)

    def derivatives(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        return self.dq_dt(q, p), self.dp_dt(q, p)

    def constrain(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        return self.physics.constrain(q, p)

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.physics.parameters()


def energy_gradient(energy: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """∂(Σ energy(x))/∂x for an energy per sample. While gradients are on, the result stays
    differentiable (``create_graph``), so a loss on a rollout reaches the energy's weights."""
    training = torch.is_grad_enabled()
    with torch.enable_grad():
        # Differentiate w.r.t. a fresh node (a view), not x itself: inside an integrator step x is
        # often computed from the other coordinate, and autograd would then follow that path and
        # return a total derivative instead of the partial one.
        x_ = x.view_as(x) if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x_).sum(), x_, create_graph=training, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return grad if training else grad.detach()


#: floor on a squared length inside its sqrt. sqrt has an infinite slope at 0 (PAIG's NaN risk when two
#: objects coincide); with the floor a length is ≥ 1e-4, so a direction d/|d| is zero for coincident
#: points and its gradient is finite. PAIG adds 1e-4 to |d| in the direction instead; that would bias
#: the force away from −∇V.
MIN_SQUARED_LENGTH = 1e-8


def floored_length(d: Tensor) -> Tensor:
    """|d| over the last dimension, shape (..., 1), never below 1e-4 (``MIN_SQUARED_LENGTH``)."""
    return d.pow(2).sum(-1, keepdim=True).clamp_min(MIN_SQUARED_LENGTH).sqrt()


def log_parameter(value: float, learnable: bool = True) -> nn.Parameter:
    """A positive physical constant stored as its log, so gradient steps never make it negative."""
    return nn.Parameter(torch.tensor(math.log(value)), requires_grad=learnable)


class ObjectParams(PluginParams):
    """Params shared by systems over object coordinates."""

    n_objects: int = Field(2, description="objects in the scene (data.n_objects)")
    dim: int = Field(2, description="coordinates per object")
