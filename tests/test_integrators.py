"""Integrator plugins, each held to what it declares: its order of convergence, bounded energy for
symplectic methods, exact time reversal for reversible ones, correct gradients, any state shape.

Every test is parametrised over the integrators in the registry, so a new plugin is checked the
moment it is installed. The physics used here are small systems defined in this file, with known
answers; the spring and pendulum plugins are added to the energy test when they are installed.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torchdiffeq import odeint

import pivf
from pivf.core.kernel.integrator import Integrator
from pivf.core.kernel.physics import PhysicsSystem, log_parameter
from pivf.core.kernel.registry import registry, reset_registry
from pivf.testing import measured_order, reference_solution

F64 = torch.float64


# --- physics with known answers ---------------------------------------------------------------

class Oscillator(PhysicsSystem):
    """H = p²/2m + kq²/2, elementwise over any state shape; exact solution known."""

    name = "test_oscillator"
    separable = True

    def __init__(self, k: float = 2.0, m: float = 0.5) -> None:
        super().__init__()
        self.log_k = log_parameter(k)
        self.m = m

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p / self.m

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return -self.log_k.exp() * q

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return (p**2 / (2 * self.m) + self.log_k.exp() * q**2 / 2).sum(-1)

    def exact(self, q0: Tensor, p0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        omega = math.sqrt(self.log_k.exp().item() / self.m)
        wt = (omega * t).reshape(-1, *[1] * q0.ndim)
        q = q0 * wt.cos() + p0 / (self.m * omega) * wt.sin()
        p = p0 * wt.cos() - q0 * self.m * omega * wt.sin()
        return q, p


class Pendulum(PhysicsSystem):
    """H = p²/(2ml²) + mgl(1 − cos q): nonlinear, with g as the learnable physical parameter."""

    name = "test_pendulum"
    separable = True

    def __init__(self, g: float = 3.0, m: float = 0.5, length: float = 1.0) -> None:
        super().__init__()
        self.log_g = log_parameter(g)
        self.m, self.length = m, length

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p / (self.m * self.length**2)

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return -self.m * self.log_g.exp() * self.length * torch.sin(q)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        potential = self.m * self.log_g.exp() * self.length * (1 - torch.cos(q))
        return (p**2 / (2 * self.m * self.length**2) + potential).sum(-1)


class QuarticKinetic(PhysicsSystem):
    """H = a·p⁴/4 + q²/2, given only as a Hamiltonian: dq/dt = a·p³ comes from autograd. A scheme
    that takes "velocity = p" integrates another flow and loses its order on this system. It does not
    declare itself separable, so leapfrog takes its step-by-step path here and the carried-force
    path on the two systems above."""

    name = "test_quartic_kinetic"

    def __init__(self, a: float = 1.0) -> None:
        super().__init__()
        self.log_a = log_parameter(a)

    def hamiltonian(self, q: Tensor, p: Tensor) -> Tensor:
        return (self.log_a.exp() * p**4 / 4 + q**2 / 2).sum(-1)


class Thruster(PhysicsSystem):
    """A free particle pushed by its input: dp/dt = gain·u. Under inputs held per frame the motion
    is piecewise quadratic, which every method of order ≥ 2 integrates exactly."""

    name = "test_thruster"
    n_controls = 1
    conservative = False

    def __init__(self, gain: float = 1.5) -> None:
        super().__init__()
        self.log_gain = log_parameter(gain)

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p

    def dp_dt(self, q: Tensor, p: Tensor, u: Tensor | None = None) -> Tensor:
        return torch.zeros_like(p) if u is None else self.log_gain.exp() * u

    def exact(self, q0: Tensor, p0: Tensor, inputs: Tensor, dt: float) -> tuple[Tensor, Tensor]:
        qs, ps = [q0], [p0]
        for u in inputs:
            push = self.log_gain.exp() * u
            qs.append(qs[-1] + ps[-1] * dt + push * dt**2 / 2)
            ps.append(ps[-1] + push * dt)
        return torch.stack(qs), torch.stack(ps)


SYSTEMS = {"oscillator": Oscillator, "pendulum": Pendulum, "quartic": QuarticKinetic}


def system(name: str) -> PhysicsSystem:
    return SYSTEMS[name]().double()


def initial_state(batch: int = 3) -> tuple[Tensor, Tensor]:
    q0 = torch.tensor([1.0, 0.3, -0.5, 0.7], dtype=F64)[:batch, None]
    p0 = torch.tensor([0.0, 0.8, 0.4, -0.6], dtype=F64)[:batch, None]
    return q0, p0


def reference(physics: PhysicsSystem, q0: Tensor, p0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Exact where known, else torchdiffeq's dopri8 at 1e-13 called directly (not through pivf)."""
    if isinstance(physics, Oscillator):
        return physics.exact(q0, p0, t)
    return reference_solution(physics, q0, p0, t)


def max_error(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


# --- the integrators under test, read from the registry ---------------------------------------

def _integrator_classes() -> dict[str, type[Integrator]]:
    reset_registry()
    reg = registry()
    return {name: reg.get("integrator", name) for name in reg.names("integrator")}


CLASSES = _integrator_classes()
ALL = sorted(CLASSES)
#: adaptive methods are the ones with a tolerance; the others take `substeps` equal steps
ADAPTIVE = [n for n in ALL if "rtol" in CLASSES[n].Params.model_fields]
FIXED = [n for n in ALL if n not in ADAPTIVE]
SYMPLECTIC = [n for n in FIXED if CLASSES[n].symplectic]
TORCHDIFFEQ_FIXED = [n for n in FIXED if "solve" in CLASSES[n].Params.model_fields]


def test_registry_offers_the_integrators_the_issue_names():
    assert {"euler", "leapfrog", "yoshida", "rk4", "midpoint", "explicit_euler", "dopri5"} <= set(ALL)
    assert {"euler", "leapfrog", "yoshida"} <= set(SYMPLECTIC)
    assert {"leapfrog", "yoshida"} <= {n for n in ALL if CLASSES[n].time_reversible}
    assert not {"euler", "rk4", "dopri5"} & {n for n in ALL if CLASSES[n].time_reversible}
    assert all(not CLASSES[n].supports_constraints for n in ADAPTIVE + TORCHDIFFEQ_FIXED)


# --- accuracy -----------------------------------------------------------------------------------

@pytest.mark.parametrize("system_name", ["oscillator", "quartic"])
@pytest.mark.parametrize("name", FIXED)
def test_measured_convergence_order_matches_the_declared_order(name, system_name):
    physics, (q0, p0) = system(system_name), initial_state()
    expected = reference(physics, q0, p0, torch.linspace(0, 1, 3, dtype=F64))
    order = measured_order(name, physics, q0, p0, reference=expected)
    assert abs(order - CLASSES[name].order) <= 0.3, f"{name}: measured order {order:.2f}"


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_integrators_meet_their_tolerance(name):
    physics, (q0, p0) = system("oscillator"), initial_state()
    t = torch.linspace(0, 1, 5, dtype=F64)
    for tol in (1e-3, 1e-5):
        with torch.no_grad():
            error = max_error(pivf.integrator(name, rtol=tol, atol=tol).rollout(physics, q0, p0, t),
                              physics.exact(q0, p0, t))
        assert error < 10 * tol, f"{name} at rtol=atol={tol}: error {error:.1e}"


def test_leapfrog_drifts_with_dq_dt_not_with_p():
    physics = system("quartic")
    q, p, h = torch.tensor([[0.3]], dtype=F64), torch.tensor([[0.8]], dtype=F64), 0.1
    half = p - h / 2 * q
    expected_q = q + h * half**3
    expected_p = half - h / 2 * expected_q
    with torch.no_grad():
        got = pivf.integrator("leapfrog").step(physics, q, p, h)
    assert max_error(got, (expected_q, expected_p)) < 1e-15


class CountingOscillator(Oscillator):
    forces = 0

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        self.forces += 1
        return super().dp_dt(q, p)


def test_leapfrog_carries_a_separable_force_to_the_next_step_and_changes_nothing_else():
    physics, (q0, p0) = CountingOscillator().double(), initial_state()
    t = torch.linspace(0, 1, 4, dtype=F64)
    leapfrog = pivf.integrator("leapfrog", substeps=5)
    carried = leapfrog.rollout(physics, q0, p0, t)
    assert physics.forces == 3 * 5 + 1
    physics.forces = 0
    stepwise = Integrator.rollout(leapfrog, physics, q0, p0, t)
    assert physics.forces == 2 * 3 * 5
    assert max_error(carried, stepwise) < 1e-15


@pytest.mark.parametrize("name", ALL)
def test_rollouts_are_the_same_while_autograd_records(name):
    """Training rolls out with autograd recording. The derivatives of a Hamiltonian must stay
    partial derivatives then, although each substep makes q a function of p and p of q."""
    physics, (q0, p0) = system("quartic"), initial_state()
    t = torch.linspace(0, 1, 3, dtype=F64)
    integrator = pivf.integrator(name, substeps=4)
    with torch.no_grad():
        plain = integrator.rollout(physics, q0, p0, t)
    recorded = integrator.rollout(physics, q0.requires_grad_(True), p0.requires_grad_(True), t)
    assert max_error(plain, recorded) < 1e-12


# --- structure: energy and reversibility --------------------------------------------------------

def _plugin(name: str, **params) -> PhysicsSystem:
    return pivf.physics(name, **params).double()


#: system -> (physics factory, q0, p0, dt); dt makes ω·dt ≈ 0.01, about 600 steps per period
ENERGY_CASES = {
    "oscillator": (lambda: system("oscillator"), *initial_state(), 0.005),
    "pendulum": (lambda: system("pendulum"), torch.tensor([[1.0], [2.0]], dtype=F64),
                 torch.tensor([[0.0], [0.3]], dtype=F64), 0.005),
    "spring plugin": (lambda: _plugin("spring", k=4.0, l=6.0),
                      torch.tensor([[[10.0, 16.0], [22.0, 18.0]], [[12.0, 10.0], [18.0, 24.0]]], dtype=F64),
                      torch.tensor([[[1.0, -0.5], [-1.0, 0.5]], [[0.5, 1.0], [0.0, -1.0]]], dtype=F64), 0.0035),
    "pendulum plugin": (lambda: _plugin("pendulum", g=3.0, l=1.0, m=0.5), torch.tensor([[1.0], [2.0]], dtype=F64),
                        torch.tensor([[0.0], [0.3]], dtype=F64), 0.005),
}
PLUGIN_CASES = ["spring plugin", "pendulum plugin"]
STEPS = 10_000
ORDER_1_ENERGY_BOUND = 2e-2


def relative_energy_error(name: str, case: str) -> Tensor:
    """|E(t)/E(0) − 1| over STEPS steps, shape (frames, batch), one frame every 100 steps."""
    make, q0, p0, dt = ENERGY_CASES[case]
    physics = make()
    t = torch.arange(STEPS // 100 + 1, dtype=F64) * 100 * dt
    with torch.no_grad():
        q, p = pivf.integrator(name, substeps=100).rollout(physics, q0, p0, t)
        energy = physics.energy(q, p)
    return (energy / energy[0] - 1).abs()


def growth(error: Tensor) -> float:
    """Largest error in the last quarter of the run over the largest in the first quarter."""
    quarter = error.shape[0] // 4
    return (error[-quarter:].max() / (error[1 : quarter + 1].max() + 1e-15)).item()


def assert_energy_bounded(name: str, case: str) -> None:
    error = relative_energy_error(name, case)
    # a method of order r keeps a modified energy within O((ω·dt)^r) of E: about 1e-2 for order 1
    bound = ORDER_1_ENERGY_BOUND if CLASSES[name].order == 1 else 1e-3
    assert error.max() < bound
    assert growth(error) < 1.5, f"{name} on {case}: energy error grows ({growth(error):.2f}x)"


@pytest.mark.parametrize("case", ["oscillator", "pendulum"])
@pytest.mark.parametrize("name", SYMPLECTIC)
def test_symplectic_integrators_keep_the_energy_error_bounded(name, case):
    assert_energy_bounded(name, case)


@pytest.mark.parametrize("case", PLUGIN_CASES)
@pytest.mark.parametrize("name", ["euler", "leapfrog"])
def test_spring_and_pendulum_plugins_keep_their_energy_under_the_papers_integrators(name, case):
    """PAIG steps with semi-implicit Euler and HGN with leapfrog; yoshida, three leapfrog steps per
    step and so three times the run time, is checked on the systems above."""
    assert_energy_bounded(name, case)


@pytest.mark.parametrize("case", ["oscillator", "pendulum"])
def test_explicit_euler_drifts_in_energy_at_the_same_step(case):
    error = relative_energy_error("explicit_euler", case)
    assert error[-1].min() > 10 * ORDER_1_ENERGY_BOUND
    assert growth(error) > 2.0


@pytest.mark.parametrize("name", FIXED)
def test_reversible_integrators_return_exactly_when_run_backwards(name):
    """Coarse steps (h = 0.25), so coming back is not a matter of accuracy: one way, every method
    misses the true solution by far more than the 1e-10 a reversible one must come back within."""
    physics, (q0, p0) = system("pendulum"), initial_state()
    t = torch.linspace(0, 3, 7, dtype=F64)
    integrator = pivf.integrator(name, substeps=2)
    with torch.no_grad():
        q, p = integrator.rollout(physics, q0, p0, t)
        back_q, back_p = integrator.rollout(physics, q[-1], p[-1], t.flip(0))
    assert max_error((q, p), reference(physics, q0, p0, t)) > 1e-5
    returned = max_error((back_q[-1], back_p[-1]), (q0, p0))
    if CLASSES[name].time_reversible:
        assert returned < 1e-10
    else:
        assert returned > 1e-6


# --- gradients ----------------------------------------------------------------------------------

@pytest.mark.parametrize("system_name", ["pendulum", "quartic"])
@pytest.mark.parametrize("name", ALL)
def test_gradients_wrt_initial_state_and_physical_parameter_pass_gradcheck(name, system_name):
    """Adaptive solvers choose their steps from the state, so finite differences also see the steps
    move: their gradients are checked to within 10x the solver tolerance, the others to gradcheck's own."""
    physics = system(system_name)
    (parameter,) = physics.parameters()
    q0, p0 = (x[:2].clone().requires_grad_(True) for x in initial_state())
    t = torch.tensor([0.0, 0.1, 0.2], dtype=F64)
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if name in ADAPTIVE else {}
    integrator = pivf.integrator(name, substeps=2, **tolerance)

    def rollout(q0: Tensor, p0: Tensor, _parameter: Tensor) -> tuple[Tensor, Tensor]:
        # the physical parameter reaches the rollout through the module; gradcheck perturbs it in place
        return integrator.rollout(physics, q0, p0, t)

    check = {"rtol": 1e-4, "atol": 1e-4} if name in ADAPTIVE else {}
    assert torch.autograd.gradcheck(rollout, (q0, p0, parameter), fast_mode=True, **check)


@pytest.mark.parametrize("system_name", ["pendulum", "quartic"])
@pytest.mark.parametrize(("name", "options"), [("rk4", {"substeps": 20}), ("dopri5", {"rtol": 1e-9, "atol": 1e-9})])
def test_adjoint_gradients_match_direct_autograd(name, options, system_name):
    physics, t = system(system_name), torch.linspace(0, 1, 3, dtype=F64)

    def gradients(adjoint: bool) -> tuple[Tensor, ...]:
        q0, p0 = (x.clone().requires_grad_(True) for x in initial_state())
        q, p = pivf.integrator(name, adjoint=adjoint, **options).rollout(physics, q0, p0, t)
        loss = (q**2).sum() + (q * p).sum()
        return torch.autograd.grad(loss, (q0, p0, *physics.parameters()))

    for adjoint, direct in zip(gradients(True), gradients(False), strict=True):
        assert torch.allclose(adjoint, direct, rtol=1e-6, atol=1e-9)


# --- shapes, batching and calling conventions ---------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 3, 4, 4)], ids=["objects BND", "latent BCHW"])
@pytest.mark.parametrize("name", ALL)
def test_rollout_shapes_start_and_batch_independence(name, shape):
    physics = QuarticKinetic()
    gen = torch.Generator().manual_seed(0)
    q0, p0 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    t = torch.arange(4) * 0.1
    integrator = pivf.integrator(name, substeps=3)
    with torch.no_grad():
        q, p = integrator.rollout(physics, q0, p0, t)
        alone_q, _ = integrator.rollout(physics, q0[:1], p0[:1], t)
    assert q.shape == p.shape == (4, *shape)
    assert q.dtype == p.dtype == torch.float32
    assert torch.equal(q[0], q0) and torch.equal(p[0], p0)
    assert not torch.allclose(q[-1], q0)
    # adaptive step sizes are chosen for the whole batch, so a lone sample differs within tolerance
    atol = 1e-4 if name in ADAPTIVE else 1e-6
    assert torch.allclose(alone_q[:, 0], q[:, 0], atol=atol)


@pytest.mark.parametrize("name", ALL)
def test_every_integrator_holds_each_input_over_its_frame_interval(name):
    """The input is an argument of the forces, one per interval (``PhysicsSystem.under``): every
    method of order ≥ 2 lands on the piecewise-quadratic exact motion; nothing stays on the system."""
    thruster = Thruster().double()
    q0, p0 = initial_state()
    inputs = torch.tensor([1.0, -0.5, 0.0, 0.8], dtype=F64)[:, None, None].expand(4, 3, 1)
    t = torch.arange(5, dtype=F64) * 0.25
    integrator = pivf.integrator(name)
    driven = integrator.rollout(thruster, q0, p0, t, inputs)
    tolerance = 1e-12 if CLASSES[name].order >= 2 else 0.05
    assert max_error(driven, thruster.exact(q0, p0, inputs, 0.25)) < tolerance
    free = integrator.rollout(thruster, q0, p0, t)
    assert max_error(free, thruster.exact(q0, p0, torch.zeros_like(inputs), 0.25)) < 1e-12
    with pytest.raises(ValueError, match="physics 'test_thruster' takes 1 control inputs, got 2"):
        integrator.rollout(thruster, q0, p0, t, inputs.expand(4, 3, 2))


@pytest.mark.parametrize("backwards", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("name", TORCHDIFFEQ_FIXED)
def test_torchdiffeq_per_interval_calls_match_one_call_over_all_times(name, backwards):
    physics, (q0, p0) = system("pendulum"), initial_state()
    t = torch.arange(7, dtype=F64) * 0.25
    t = -t if backwards else t
    method = CLASSES[name].method
    with torch.no_grad():
        per_interval = pivf.integrator(name, substeps=4).rollout(physics, q0, p0, t)
        once = pivf.integrator(name, substeps=4, solve="once").rollout(physics, q0, p0, t)
        raw = odeint(lambda _t, y: physics.derivatives(*y), (q0, p0), t, method=method,
                     options={"step_size": 0.0625})
    assert max_error(per_interval, once) < 1e-13
    assert max_error(per_interval, raw) < 1e-13


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_cuda_rollouts_and_gradients_match_cpu(name):
    t = torch.linspace(0, 1, 4, dtype=F64)

    def run(device: str) -> tuple[Tensor, ...]:
        physics = system("pendulum").to(device)
        q0, p0 = (x.to(device).requires_grad_(True) for x in initial_state())
        q, p = pivf.integrator(name, substeps=3).rollout(physics, q0, p0, t.to(device))
        grads = torch.autograd.grad((q**2).sum() + p.sum(), (q0, p0, *physics.parameters()))
        return tuple(x.cpu() for x in (q, p, *grads))

    # adaptive solvers may accept a step on one device that they reject on the other
    tol = 1e-4 if name in ADAPTIVE else 1e-9
    for cuda, cpu in zip(run("cuda"), run("cpu"), strict=True):
        assert torch.allclose(cuda, cpu, rtol=tol, atol=tol)
