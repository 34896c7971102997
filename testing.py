"""Checks a plugin package runs in its own tests, the ones pivf runs on its built-ins.

    from pivf.testing import assert_follows_hamiltons_equations, assert_energy_conserved, random_state

    def test_my_system_is_hamiltonian():
        system = pivf.physics("my_system").double()
        assert_follows_hamiltons_equations(system, *random_state(system, scale=8.0))

- ``random_state``: a float64 batch of (q, p) of a system's state shape.
- ``assert_follows_hamiltons_equations``: dq/dt = ∂H/∂p and dp/dt = −∂H/∂q (for force laws: F = −∇V).
- ``assert_energy_conserved``: the flow keeps ``energy`` constant, ∇E·f = 0 (to rounding).
- ``assert_separable_as_declared``: a system that says it is ``separable`` has dq/dt free of q and
  dp/dt free of p (leapfrog reuses forces across steps on that promise).
- ``measured_order``: an integrator's order of convergence, fitted on a reference solution.
- ``registered``: plugin classes registered for the duration of one test, without a package.
- ``grid_sampled_warp``: the spatial transformer's warp by ``affine_grid`` + ``grid_sample``, the
  reference its separable form is checked and timed against.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch
from torch import Tensor
from torchdiffeq import odeint

import pivf
from pivf.core.kernel.hookspecs import HOOK_OF_KIND, hookimpl
from pivf.core.kernel.physics import PhysicsSystem
from pivf.core.kernel.plugin import Plugin
from pivf.core.kernel.registry import registry, reset_registry
from pivf.plugins.decoders.spatial_transformer import MASK_OFFSET, SpatialTransformerDecoder

F64 = torch.float64


def random_state(system: PhysicsSystem, batch: int = 8, scale: float = 1.0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(q, p) of shape (batch, *system.state_shape()) in float64: q ~ scale·N(0, 1), p ~ N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, *system.state_shape())
    q = scale * torch.randn(shape, generator=generator, dtype=F64)
    p = torch.randn(shape, generator=generator, dtype=F64)
    return q, p


def energy_gradients(system: PhysicsSystem, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """(∂E/∂q, ∂E/∂p) of the system's energy, summed over the batch."""
    q, p = q.clone().requires_grad_(True), p.clone().requires_grad_(True)
    dq, dp = torch.autograd.grad(system.energy(q, p).sum(), (q, p), materialize_grads=True)
    return dq, dp


def energy_rate(system: PhysicsSystem, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """dE/dt = ∇E·f per sample, and the scale |∇E|·|f| it should be compared with."""
    de_dq, de_dp = energy_gradients(system, q, p)
    dq, dp = system.derivatives(q, p)
    rate = (de_dq * dq).flatten(1).sum(1) + (de_dp * dp).flatten(1).sum(1)
    scale = torch.cat((de_dq, de_dp), 1).flatten(1).norm(dim=1) * torch.cat((dq, dp), 1).flatten(1).norm(dim=1)
    return rate, scale


def assert_follows_hamiltons_equations(system: PhysicsSystem, q: Tensor, p: Tensor, rtol: float = 1e-10,
                                       atol: float = 1e-12) -> None:
    """The equations of motion are Hamilton's for the system's energy (use float64 states)."""
    de_dq, de_dp = energy_gradients(system, q, p)
    dq, dp = system.derivatives(q, p)
    torch.testing.assert_close(dq, de_dp, rtol=rtol, atol=atol)
    torch.testing.assert_close(dp, -de_dq, rtol=rtol, atol=atol)


def assert_energy_conserved(system: PhysicsSystem, q: Tensor, p: Tensor, tolerance: float = 1e-10) -> None:
    """∇E·f vanishes relative to |∇E|·|f|: the flow conserves energy (also for velocity states,
    where the energy is not a Hamiltonian)."""
    rate, scale = energy_rate(system, q, p)
    worst = float((rate.abs() / scale.clamp_min(1e-300)).max().detach())
    assert worst <= tolerance, f"energy changes along the flow: |∇E·f| / (|∇E|·|f|) up to {worst:.3g}"


def assert_separable_as_declared(system: PhysicsSystem, q: Tensor, p: Tensor) -> None:
    """If ``system.separable``, moving q leaves dq/dt unchanged and moving p leaves dp/dt unchanged."""
    if not system.separable:
        return
    generator = torch.Generator().manual_seed(1)
    other_q = q + torch.randn(q.shape, generator=generator, dtype=q.dtype).to(q.device)
    other_p = p + torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
    torch.testing.assert_close(system.dq_dt(other_q, p), system.dq_dt(q, p), msg="separable, yet dq/dt reads q")
    torch.testing.assert_close(system.dp_dt(q, other_p), system.dp_dt(q, p), msg="separable, yet dp/dt reads p")


def reference_solution(physics: PhysicsSystem, q0: Tensor, p0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """torchdiffeq's dopri8 at 1e-13 through frame times ``t``, called directly (not through pivf)."""
    with torch.no_grad():
        return odeint(lambda _t, y: physics.derivatives(*y), (q0, p0), t, method="dopri8",
                      rtol=1e-13, atol=1e-13, options={"step_t": t})


def fitted_order(steps: list[float], errors: list[float]) -> float:
    """Slope of log(error) against log(step), by least squares."""
    x, y = torch.tensor(steps, dtype=F64).log(), torch.tensor(errors, dtype=F64).log()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def measured_order(integrator: str, physics: PhysicsSystem, q0: Tensor, p0: Tensor,
                   substeps: tuple[int, ...] = (4, 8, 16, 32), t_end: float = 1.0,
                   reference: tuple[Tensor, Tensor] | None = None) -> float:
    """The order of convergence of a fixed-step integrator plugin on ``physics`` from (q0, p0), over
    two frame intervals up to ``t_end``: compare it with the integrator's declared ``order``."""
    t = torch.linspace(0, t_end, 3, dtype=F64)
    expected = reference if reference is not None else reference_solution(physics, q0, p0, t)
    errors = []
    with torch.no_grad():
        for n in substeps:
            q, p = pivf.integrator(integrator, substeps=n).rollout(physics, q0, p0, t)
            errors.append(max(float((q - expected[0]).abs().max()), float((p - expected[1]).abs().max())))
    return fitted_order([t_end / 2 / n for n in substeps], errors)


def _hook(classes: list[type[Plugin]]):  # noqa: ANN202 - a pluggy hook implementation
    def hook() -> list[type[Plugin]]:
        return list(classes)

    return hookimpl(hook)


@contextmanager
def registered(*classes: type[Plugin], distribution: str = "test-plugins") -> Iterator[None]:
    """Plugin classes visible to ``pivf`` (CLI, configs, ``pivf.physics(...)``) inside the block,
    registered through a module of hooks as a package's would be; the registry is reloaded after."""
    module = ModuleType(f"pivf_testing_{distribution.replace('-', '_')}")
    for kind, hook_name in HOOK_OF_KIND.items():
        mine = [cls for cls in classes if cls.kind == kind]
        if mine:
            setattr(module, hook_name, _hook(mine))
    reset_registry()
    sys.modules[module.__name__] = module
    try:
        registry().add_module(module, distribution)
        yield
    finally:
        sys.modules.pop(module.__name__, None)
        reset_registry()


def grid_sampled_warp(decoder: SpatialTransformerDecoder, q: Tensor) -> Tensor:
    """``SpatialTransformerDecoder.warp`` computed by ``affine_grid`` and ``grid_sample``
    (``align_corners=False``, zero padding): (B, N, 1 + C, H, W)."""
    b, n, _ = q.shape
    size, sigma = decoder.params.image_size, decoder.sigma.to(q.dtype)
    theta = torch.zeros(b * n, 2, 3, dtype=q.dtype, device=q.device)
    theta[:, 0, 0] = sigma
    theta[:, 1, 1] = sigma
    theta[:, :, 2] = (-sigma * (2 * q / size - 1)).reshape(b * n, 2)
    joint = torch.cat([decoder.mask_template() + MASK_OFFSET, torch.sigmoid(decoder.content_template())], dim=1)
    joint = joint.to(q.dtype).unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(b * n, *joint.shape[1:])
    grid = torch.nn.functional.affine_grid(theta, [b * n, joint.shape[1], size, size], align_corners=False)
    warped = torch.nn.functional.grid_sample(joint, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.reshape(b, n, *warped.shape[1:])
