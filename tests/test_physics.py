"""Physics plugins: construction, equations consistent with their energy, safety at singular
points, wall bounces, and recovery of physical parameters from trajectories (no pixels)."""
from __future__ import annotations

import math

import pytest
import torch
from torchdiffeq import odeint

import pivf
from pivf.api import ObjectParams, PhysicsSystem, PluginParams
from pivf.core.kernel.errors import PluginParamsError
from pivf.core.kernel.registry import reset_registry
from pivf.plugins.tasks.mujoco import wrap
from pivf.testing import (
    assert_energy_conserved,
    assert_follows_hamiltons_equations,
    assert_separable_as_declared,
    energy_rate,
    random_state,
)

F64 = torch.float64

ALL_PHYSICS = ["spring", "gravity", "pendulum", "bouncing", "mass_spring", "damped_spring", "hamiltonian",
               "hamiltonian_latent"]


@pytest.fixture(autouse=True)
def fresh_registry():
    reset_registry()
    yield
    reset_registry()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: extra intra-op threads only add synchronisation (10× slower on a busy CI box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def double(name: str, **params) -> torch.nn.Module:
    return pivf.physics(name, **params).double()


# --- equations of motion against energy ----------------------------------------------------------

CANONICAL = [
    ("spring", {"k": 4.0, "l": 6.0}, 8.0),
    ("gravity", {"g": 60.0, "momentum": True, "masses": [1.0, 2.0, 3.0]}, 10.0),
    ("gravity", {"g": 60.0, "momentum": True, "n_objects": 4, "softening": 0.5}, 2.0),
    ("gravity", {"g": 60.0, "momentum": True, "paig_clipping": True}, 2.0),
    ("gravity", {"g": 60.0, "momentum": True, "paig_clipping": True}, 200.0),
    ("pendulum", {"g": 3.0, "l": 1.5, "m": 0.5}, 2.0),
    ("mass_spring", {"k": 2.0, "m": 0.5}, 1.0),
    ("bouncing", {}, 10.0),
]


@pytest.mark.parametrize("name, params, scale", CANONICAL)
def test_canonical_systems_follow_hamiltons_equations(name, params, scale):
    """dq/dt = ∂H/∂p and dp/dt = −∂H/∂q: for force laws this says the force is −∇V."""
    system = double(name, **params)
    assert_follows_hamiltons_equations(system, *random_state(system, scale=scale))


class _Trap(PhysicsSystem[ObjectParams]):
    """Objects held by springs to the origin, which do not say their state's shape."""

    name = "trap"
    description = "objects in a harmonic trap"

    def hamiltonian(self, q, p):
        return 0.5 * (p.pow(2) + q.pow(2)).flatten(1).sum(1)


class _Oscillator(_Trap):
    """The same flow over coordinates that are not objects: nothing to say their shape."""

    name = "oscillator"
    Params = PluginParams


def test_an_object_system_has_the_shape_of_its_objects_without_saying_it():
    system = _Trap({"n_objects": 3, "dim": 1})
    assert system.state_shape() == (3, 1)
    q, p = random_state(system, batch=4)
    assert q.shape == p.shape == (4, 3, 1)
    assert_follows_hamiltons_equations(system, q, p)
    assert _Oscillator().state_shape() == ()


LEARNED = [
    ("hamiltonian_latent", {"latent": "vector", "latent_channels": 3, "hidden": [8, 8]}, 1.0),
    ("hamiltonian_latent", {"latent": "vector", "latent_channels": 3, "hidden": [8], "kinetic": "quadratic"}, 1.0),
    ("hamiltonian_latent", {"latent_channels": 2, "conv_channels": [4, 4], "kinetic": "quadratic"}, 1.0),
    ("hamiltonian", {"hidden": [8], "kinetic": "quadratic"}, 1.0),
    ("hamiltonian", {"hidden": [8], "kinetic": "quadratic", "potential": "pairwise", "n_objects": 3}, 3.0),
    ("hamiltonian_latent", {"latent": "vector", "latent_channels": 3, "hidden": [8], "angles": 2}, 4.0),
]


@pytest.mark.parametrize("name, params, scale", LEARNED)
def test_learned_hamiltonians_follow_hamiltons_equations_in_every_form(name, params, scale):
    system = double(name, **params)
    assert_follows_hamiltons_equations(system, *random_state(system, scale=scale))


def test_a_quadratic_kinetic_energy_moves_q_by_p_and_learns_only_the_potential():
    system = pivf.physics("hamiltonian_latent", latent="vector", latent_channels=2, hidden=[8], kinetic="quadratic")
    q, p = torch.randn(2, 5, 2)
    assert system.state_shape() == (2,)
    assert system.dq_dt(q, p) is p
    torch.testing.assert_close(system.hamiltonian(q, p), 0.5 * p.pow(2).sum(-1) + system.potential(q))
    assert not list(system.kinetic.parameters())
    with pytest.raises(PluginParamsError, match="kinetic: quadratic .* needs separable: true"):
        pivf.physics("hamiltonian", kinetic="quadratic", separable=False)


CONSERVATIVE = [(name, params, scale) for name, params, scale in CANONICAL + LEARNED] + [
    ("gravity", {"g": 60.0, "masses": [1.0, 2.0, 3.0], "learn_masses": True}, 10.0),
    ("gravity", {"g": 60.0, "masses": [0.5, 2.0, 3.0], "paig_clipping": True}, 3.0),
]


@pytest.mark.parametrize("name, params, scale", CONSERVATIVE)
def test_conservative_flows_keep_energy_constant(name, params, scale):
    """∇E·f = 0 exactly (to rounding), also for velocity states where E is not a Hamiltonian."""
    system = double(name, **params)
    assert system.conservative
    assert_energy_conserved(system, *random_state(system, scale=scale, seed=1))


def test_damping_dissipates_exactly_the_friction_power():
    system = double("damped_spring", k=2.0, m=0.5, zeta=0.3)
    k, m, zeta = system.learned_parameters().values()
    q, p = random_state(system)
    rate, _ = energy_rate(system, q, p)
    friction = 2 * zeta * math.sqrt(k / m)
    torch.testing.assert_close(rate, -friction * (p**2).sum(1) / m, rtol=1e-10, atol=1e-12)


def test_actuation_torque_does_work_at_rate_torque_times_angular_velocity():
    system = double("pendulum", g=3.0, m=0.5, l=2.0, actuation=0.7, learn_length=True, learn_actuation=True)
    q, p = random_state(system)
    rate, _ = energy_rate(system, q, p)
    l, torque = system.learned_parameters()["l"], system.learned_parameters()["actuation"]
    torch.testing.assert_close(rate, torque * (p / (system.log_m.exp() * l**2)).sum(1), rtol=1e-10, atol=1e-12)


def test_gravity_paig_clipping_reproduces_the_paig_three_body_cell():
    """PAIG: vec = [p0−p1, p1−p2, p2−p0], f = vec/clip(sqrt(clip(Σvec², .1, 1e5)), 1, 170)³,
    F = −g·[f01−f20, f12−f01, f20−f12]; states include pairs closer than 1 and farther than 170."""
    system = double("gravity", g=60.0, paig_clipping=True)
    q, p = random_state(system, batch=64, scale=80.0)
    q[:8, 1] = q[:8, 0] + 0.3 * torch.randn(8, 2, dtype=torch.float64)
    vec = torch.stack((q[:, 0] - q[:, 1], q[:, 1] - q[:, 2], q[:, 2] - q[:, 0]), 1)
    norm = (vec**2).sum(-1, keepdim=True).clamp(0.1, 1e5).sqrt()
    f = vec / norm.clamp(1.0, 170.0) ** 3
    paig = -system.log_g.exp() * torch.stack((f[:, 0] - f[:, 2], f[:, 1] - f[:, 0], f[:, 2] - f[:, 1]), 1)
    distances = norm.squeeze(-1)
    assert (distances < 1).any() and (distances > 170).any()
    torch.testing.assert_close(system.dp_dt(q, p), paig, rtol=1e-12, atol=1e-12)


def test_gravity_is_inverse_square_and_momentum_mode_moves_heavy_bodies_slowly():
    masses = torch.tensor([[2.0], [3.0]], dtype=torch.float64)
    system = double("gravity", n_objects=2, g=5.0, masses=[2.0, 3.0])
    q = torch.tensor([[[0.0, 0.0], [4.0, 0.0]]], dtype=torch.float64)
    accel = system.dp_dt(q, torch.zeros_like(q))
    expected = torch.tensor([[[5.0 * 3.0 / 4**2, 0.0], [-5.0 * 2.0 / 4**2, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(accel, expected)
    momentum = double("gravity", n_objects=2, g=5.0, masses=[2.0, 3.0], momentum=True)
    torch.testing.assert_close(momentum.dp_dt(q, q), accel * masses)
    torch.testing.assert_close(momentum.dq_dt(q, q), q / masses)


# --- singular points and constraints ---------------------------------------------------------------

def test_spring_is_finite_with_finite_gradients_when_the_objects_coincide():
    system = pivf.physics("spring", k=4.0, l=6.0)
    q = torch.full((2, 2, 2), 16.0, requires_grad=True)
    p = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    force = system.dp_dt(q, p)
    assert torch.isfinite(force).all() and torch.isfinite(system.energy(q, p)).all()
    qs, _ = pivf.integrator("euler", substeps=5).rollout(system, q, p, torch.arange(4) * 0.3)
    (qs.square().sum() + force.square().sum() + system.energy(q, p).sum()).backward()
    grads = [q.grad, system.log_k.grad, system.log_l.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert system.log_k.grad.abs() > 0


def test_ball_moving_into_a_wall_comes_back_mirrored():
    system = double("bouncing", n_objects=1, radius=2.0, box=32.0)
    q0 = torch.tensor([[[28.0, 10.0]]], dtype=torch.float64, requires_grad=True)
    p0 = torch.tensor([[[8.0, -1.0]]], dtype=torch.float64)
    qs, ps = pivf.integrator("euler", substeps=5).rollout(system, q0, p0, torch.tensor([0.0, 0.6]))
    # free flight reaches the wall's contact line x = 30 at t = 0.25, then travels back for 0.35
    torch.testing.assert_close(qs[-1], torch.tensor([[[30 - 8 * 0.35, 10 - 0.6]]], dtype=torch.float64))
    torch.testing.assert_close(ps[-1], torch.tensor([[[-8.0, -1.0]]], dtype=torch.float64))
    (grad,) = torch.autograd.grad(qs[-1, 0, 0, 0], q0)
    assert grad[0, 0, 0].item() == -1.0  # a mirror: moving the start right moves the end left


def test_bouncing_balls_stay_in_the_box_with_exactly_constant_energy():
    system = double("bouncing", n_objects=3, radius=2.0, box=32.0)
    gen = torch.Generator().manual_seed(0)
    q0 = 2 + 28 * torch.rand(16, 3, 2, generator=gen, dtype=torch.float64)
    p0 = 16 * torch.rand(16, 3, 2, generator=gen, dtype=torch.float64) - 8
    with torch.no_grad():
        qs, ps = pivf.integrator("euler", substeps=5).rollout(system, q0, p0, torch.arange(1001) * 0.3)
    assert qs.min() >= 2.0 and qs.max() <= 30.0
    assert torch.equal(ps.abs(), p0.abs().expand_as(ps))
    assert (ps[-1] != p0).any()  # walls were hit
    energy = system.energy(qs, ps)
    assert torch.equal(energy, energy[:1].expand_as(energy))


# --- parameter recovery from trajectories ----------------------------------------------------------

def accurate_rollout(system, q0: torch.Tensor, p0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Positions from an adaptive dopri5 solve of the same equations, far more accurate than Euler."""
    with torch.no_grad():
        qs, _ = odeint(lambda _, state: system.derivatives(*state), (q0, p0), t, rtol=1e-9, atol=1e-9, method="dopri5")
    return qs


def fit(model, q0: torch.Tensor, p0: torch.Tensor, t: torch.Tensor, target: torch.Tensor, adam_steps: int,
        lbfgs_steps: int = 30, lr: float = 0.1, substeps: int = 5, integrator: str = "euler") -> None:
    """Fit the model's parameters by MSE of positions along rollouts (Adam, then L-BFGS).

    Semi-implicit Euler is leapfrog with p staggered half a step behind q, so starting from
    p(−h/2) ≈ p0 − (h/2)·dp/dt makes its positions second-order accurate; a velocity estimator learns
    the same shift. From p0 itself, the O(h) error would bias k or g by about 1% at these step sizes.
    """
    stepper = pivf.integrator(integrator, substeps=substeps)
    h = float(t[1] - t[0]) / stepper.substeps
    stagger = 0.5 * h if integrator == "euler" else 0.0

    def loss() -> torch.Tensor:
        qs, _ = stepper.rollout(model, q0, p0 - stagger * model.dp_dt(q0, p0), t)
        return ((qs - target) ** 2).mean()

    adam = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(adam_steps):
        adam.zero_grad()
        loss().backward()
        adam.step()
    lbfgs = torch.optim.LBFGS(model.parameters(), max_iter=lbfgs_steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        value = loss()
        value.backward()
        return value

    lbfgs.step(closure)


def unit_vectors(angles: torch.Tensor) -> torch.Tensor:
    return torch.stack((angles.cos(), angles.sin()), -1)


def test_spring_k_and_l_are_recovered_from_paig_like_trajectories():
    """PAIG spring_color: centre in [8, 24]², separation 12·U(0.5, 1.5), speed 8, dt 0.3, k=4, l=6."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    batch = 16
    centre = 8 + 16 * rand(batch, 1, 2)
    half = 6 * (0.5 + rand(batch, 1, 1)) * unit_vectors(2 * math.pi * rand(batch, 1))
    q0 = torch.cat((centre + half, centre - half), 1)
    p0 = 8 * unit_vectors(2 * math.pi * rand(batch, 2))
    t = torch.arange(12, dtype=torch.float64) * 0.3
    target = accurate_rollout(double("spring", k=4.0, l=6.0), q0, p0, t)
    model = double("spring")
    fit(model, q0, p0, t, target, adam_steps=100)
    assert model.learned_parameters() == pytest.approx({"k": 4.0, "l": 6.0}, rel=0.01)


def test_gravity_g_is_recovered_from_three_body_orbits():
    """PAIG 3bp: bodies ~120° apart at radius 6.75–11.25 around the centre, tangential speed 2 plus
    a shared jitter, g=60, dt 0.5; sequences with a pair closer than 3 px are rejected, as PAIG does."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    candidates = 48
    first = 2 * math.pi * rand(candidates, 1)
    angles = torch.cat((first, first + 2 * math.pi / 3 + 0.5 * rand(candidates, 1) - 0.25,
                        first + 4 * math.pi / 3 + 0.5 * rand(candidates, 1) - 0.25), 1)
    radius = (0.75 + 0.5 * rand(candidates, 1, 1)) * 9
    q0 = 18 + radius * unit_vectors(angles)
    spin = torch.where(rand(candidates, 1, 1) < 0.5, -1.0, 1.0)
    p0 = 2 * spin * unit_vectors(angles + math.pi / 2) + rand(candidates, 1, 2) - 0.5
    t = torch.arange(20, dtype=torch.float64) * 0.5
    target = accurate_rollout(double("gravity", g=60.0), q0, p0, t)
    gaps = (target.unsqueeze(-2) - target.unsqueeze(-3)).norm(dim=-1) + 1e3 * torch.eye(3, dtype=torch.float64)
    keep = gaps.amin(dim=(0, 2, 3)) > 3
    assert keep.sum() >= 16
    model = double("gravity")
    fit(model, q0[keep][:16], p0[keep][:16], t, target[:, keep][:, :16], adam_steps=60)
    assert model.learned_parameters()["g"] == pytest.approx(60.0, rel=0.01)


def test_pendulum_g_is_recovered_from_hgn_like_swings():
    """HGN pendulum: m=0.5, l=1, g=3, (q, p) on circles of radius U(1.3, 2.3), dt 0.125."""
    gen = torch.Generator().manual_seed(0)
    batch = 16
    radius = 1.3 + torch.rand(batch, 1, generator=gen, dtype=torch.float64)
    direction = unit_vectors(2 * math.pi * torch.rand(batch, generator=gen, dtype=torch.float64))
    q0, p0 = radius * direction[:, :1], radius * direction[:, 1:]
    t = torch.arange(30, dtype=torch.float64) * 0.125
    target = accurate_rollout(double("pendulum", **pivf.physics("pendulum").ground_truth), q0, p0, t)
    model = double("pendulum", m=0.5, l=1.0)
    fit(model, q0, p0, t, target, adam_steps=60)
    assert model.learned_parameters()["g"] == pytest.approx(3.0, rel=0.01)


# --- learned Hamiltonians ------------------------------------------------------------------------

def test_learned_hamiltonian_fitted_to_a_spring_conserves_its_own_energy_along_leapfrog():
    gen = torch.Generator().manual_seed(0)
    radius = 0.1 + 0.9 * torch.rand(32, 1, 1, generator=gen)
    angle = 2 * math.pi * torch.rand(32, 1, 1, generator=gen)
    q0, p0 = radius * angle.cos(), radius * angle.sin()
    truth = pivf.physics("mass_spring", **pivf.physics("mass_spring").ground_truth)
    t = torch.arange(8) * 0.125
    model = pivf.physics("hamiltonian", n_objects=1, dim=1, hidden=[32, 32])
    fit(model, q0, p0, t, accurate_rollout(truth, q0, p0, t), adam_steps=0, lbfgs_steps=60, substeps=1)
    with torch.no_grad():
        learned, true = torch.cat(model.derivatives(q0, p0)), torch.cat(truth.derivatives(q0, p0))
        assert (learned - true).norm() < 0.05 * true.norm()
        qs, ps = pivf.integrator("leapfrog", substeps=8).rollout(model, q0[:4], p0[:4], torch.arange(100) * 0.125)
        energy = model.energy(qs, ps)
        floor = model.energy(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))
    spread = (energy.amax(0) - energy.amin(0)) / (energy.mean(0) - floor)
    assert (spread < 1e-3).all(), spread


def test_a_pair_potential_learns_the_spring_and_holds_beyond_the_lengths_it_saw():
    """V = φ(|q0 − q1|) depends on nothing but the distance (moving or turning the pair changes no
    energy, the forces are equal and opposite), so fitting it to a spring over extensions of ±2 gives
    the spring's force out to ±2.5, where an MLP over the four coordinates has not learned it."""
    gen = torch.Generator().manual_seed(0)
    truth = double("spring", k=4.0, l=6.0)

    def states(n: int, stretch: float) -> tuple[torch.Tensor, torch.Tensor]:
        centre = 5 * torch.randn(n, 1, 2, generator=gen, dtype=torch.float64)
        angle = 2 * math.pi * torch.rand(n, 1, generator=gen, dtype=torch.float64)
        length = 12.0 + stretch * (2 * torch.rand(n, 1, generator=gen, dtype=torch.float64) - 1)
        half = 0.5 * length * torch.cat((angle.cos(), angle.sin()), -1)
        return torch.stack((centre[:, 0] + half, centre[:, 0] - half), 1), torch.zeros(n, 2, 2, dtype=torch.float64)

    q, p = states(256, stretch=2.0)
    beyond, _ = states(256, stretch=2.5)
    beyond = beyond[(beyond[:, 0] - beyond[:, 1]).norm(dim=-1).sub(12.0).abs() > 2.0]
    errors = {}
    for potential in ("pairwise", "mlp"):
        torch.manual_seed(0)
        model = double("hamiltonian", hidden=[32, 32], kinetic="quadratic", potential=potential)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            optimizer.zero_grad()
            (model.dp_dt(q, p) - truth.dp_dt(q, p)).pow(2).mean().backward()
            optimizer.step()
        with torch.no_grad():
            force, true = model.dp_dt(beyond, beyond), truth.dp_dt(beyond, beyond)
            errors[potential] = float((force - true).norm() / true.norm())
            if potential == "pairwise":
                torch.testing.assert_close(force[:, 0], -force[:, 1])
                moved = beyond.flip(-1) * torch.tensor([1.0, -1.0], dtype=torch.float64) + 3.0  # turned 90°, moved
                torch.testing.assert_close(model.potential(moved), model.potential(beyond))
    assert errors["pairwise"] < 0.05 < errors["mlp"], errors


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_latent_hamiltonian_takes_any_map_size_and_leading_dims(size):
    system = pivf.physics("hamiltonian_latent", separable=False, latent_size=size)
    q, p = torch.randn(2, 3, 2, *system.state_shape())
    assert system.state_shape() == (16, size, size)
    dq, dp = system.derivatives(q, p)
    assert dq.shape == dp.shape == q.shape
    assert system.energy(q, p).shape == (3, 2)


SEPARABLE = [(name, params, scale, True) for name, params, scale in CANONICAL + LEARNED if name != "bouncing"] + [
    ("bouncing", {}, 10.0, False),  # its walls reflect p: a constraint, not a force
    ("damped_spring", {}, 1.0, False),
    ("hamiltonian", {"separable": False}, 1.0, False),
    ("hamiltonian_latent", {"separable": False}, 1.0, False),
]


@pytest.mark.parametrize("name, params, scale, expected", SEPARABLE)
def test_systems_declare_separability_and_keep_to_it(name, params, scale, expected):
    """Leapfrog carries a separable system's force from one step to the next: the flag must hold."""
    system = double(name, **params)
    assert system.separable is expected
    assert_separable_as_declared(system, *random_state(system, scale=scale))


@pytest.mark.parametrize("name", ["hamiltonian", "hamiltonian_latent"])
def test_joint_hamiltonians_read_both_coordinates_in_both_derivatives(name):
    """The check above would pass for a system that wrongly said separable: false; this one cannot."""
    joint = pivf.physics(name, separable=False)
    q, p = torch.randn(2, 4, *joint.state_shape())
    other = torch.randn_like(q)
    assert not torch.allclose(joint.dq_dt(q, p), joint.dq_dt(other, p))
    assert not torch.allclose(joint.dp_dt(q, p), joint.dp_dt(q, other))


@pytest.mark.parametrize("separable", [True, False])
@pytest.mark.parametrize("activation", ["softplus", "tanh", "swish"])
def test_latent_hamiltonian_trains_every_weight_through_its_derivatives(separable, activation):
    """A loss on the positions of an Euler rollout reaches all weights via create_graph."""
    system = pivf.physics("hamiltonian_latent", separable=separable, activation=activation)
    q0, p0 = torch.randn(2, 2, 16, 4, 4)
    qs, _ = pivf.integrator("euler", substeps=2).rollout(system, q0, p0, torch.arange(3) * 0.125)
    assert qs.shape == (3, 2, 16, 4, 4)
    qs.square().mean().backward()
    for name, weight in system.named_parameters():
        assert weight.grad is not None and weight.grad.abs().sum() > 0, name


# --- a pendulum in image coordinates -------------------------------------------------------------

def swinging_bob(system, angle: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, p) of a bob at angle θ from the downward vertical, turning at θ̇, on the system's circle."""
    length, pivot = system.log_length.exp(), system.pivot
    direction = torch.stack((angle.sin(), angle.cos()), -1)[:, None]
    tangent = torch.stack((angle.cos(), -angle.sin()), -1)[:, None]
    return pivot + length * direction, length * rate[:, None, None] * tangent


def angle_solution(g_over_l: float, damping: float, angle: torch.Tensor, rate: torch.Tensor,
                   t: torch.Tensor) -> torch.Tensor:
    """θ(t) of θ̈ = −ω² sin θ − b θ̇ by an accurate adaptive solve."""
    def field(_, state):
        theta, omega = state
        return omega, -g_over_l * theta.sin() - damping * omega
    thetas, _ = odeint(field, (angle, rate), t, rtol=1e-10, atol=1e-10, method="dopri5")
    return thetas


def test_pivot_pendulum_swings_as_its_angle_equation_with_the_rod_kept_rigid():
    system = double("pivot_pendulum", g_over_l=10.9, damping=0.3, length=13.3, pivot=(16.0, 10.0))
    gen = torch.Generator().manual_seed(0)
    angle = (torch.rand(6, generator=gen, dtype=F64) - 0.5) * 2.6
    rate = (torch.rand(6, generator=gen, dtype=F64) - 0.5) * 4
    q0, p0 = swinging_bob(system, angle, rate)
    t = torch.arange(31, dtype=F64) * 0.1
    expected, _ = swinging_bob(system, angle_solution(10.9, 0.3, angle, rate, t).reshape(-1),
                               torch.zeros(6 * 31, dtype=F64))
    # with damping both are first-order, leapfrog with a far smaller constant
    for name, substeps, tolerance in (("leapfrog", 5, 0.12), ("leapfrog", 40, 0.012), ("euler", 100, 0.08)):
        qs, _ = pivf.integrator(name, substeps=substeps).rollout(system, q0, p0, t)
        radius = (qs - system.pivot).norm(dim=-1)
        # no stretch
        torch.testing.assert_close(radius, system.log_length.exp().expand_as(radius), rtol=1e-12, atol=1e-12)
        assert (qs - expected.reshape(31, 6, 1, 2)).abs().max() < tolerance, (name, substeps)


def test_pivot_pendulum_energy_falls_at_the_damping_power_and_is_kept_without_damping():
    gen = torch.Generator().manual_seed(1)
    angle, rate = torch.rand(8, generator=gen, dtype=F64) * 2 - 1, torch.rand(8, generator=gen, dtype=F64) * 2 - 1
    for damping in (0.0, 0.4):
        system = double("pivot_pendulum", g_over_l=5.0, damping=damping, length=10.0, pivot=(12.0, 8.0))
        q, p = swinging_bob(system, angle, rate)
        energy_rate_now, _ = energy_rate(system, q, p)
        torch.testing.assert_close(energy_rate_now, -system.damping * (p**2).sum((-2, -1)), rtol=1e-9, atol=1e-9)


def test_pivot_pendulum_drops_a_radial_velocity_error_that_a_tangential_one_would_carry():
    system = double("pivot_pendulum", g_over_l=5.0, length=10.0, pivot=(12.0, 8.0))
    q, p = swinging_bob(system, torch.tensor([0.4, -0.7], dtype=F64), torch.tensor([1.0, 0.5], dtype=F64))
    radial = (q - system.pivot) / 10.0
    tangent = torch.stack((radial[..., 1], -radial[..., 0]), -1)
    t = torch.arange(11, dtype=F64) * 0.1
    leapfrog = pivf.integrator("leapfrog", substeps=5)
    clean, _ = leapfrog.rollout(system, q, p, t)
    off_radially, _ = leapfrog.rollout(system, q, p + 3.0 * radial, t)
    off_tangentially, _ = leapfrog.rollout(system, q, p + 3.0 * tangent, t)
    assert (off_radially - clean).abs().max() < 0.05 < 1.0 < (off_tangentially - clean).abs().max()


@pytest.mark.slow(seconds=16)
def test_pivot_pendulum_recovers_g_over_l_damping_pivot_and_rod_from_positions():
    truth = {"g_over_l": 10.9, "damping": 0.3, "length": 13.3, "pivot": (16.0, 10.0)}
    gen = torch.Generator().manual_seed(2)
    angle = (torch.rand(6, generator=gen, dtype=F64) - 0.5) * 2.4
    rate = (torch.rand(6, generator=gen, dtype=F64) - 0.5) * 4
    t = torch.arange(12, dtype=F64) * 0.1
    true_system = double("pivot_pendulum", **truth)
    with torch.no_grad():
        q0, p0 = swinging_bob(true_system, angle, rate)
        thetas = angle_solution(10.9, 0.3, angle, rate, t).reshape(-1)
        target, _ = swinging_bob(true_system, thetas, torch.zeros_like(thetas))
    model = double("pivot_pendulum", g_over_l=3.0, length=12.0, pivot=(15.0, 11.0))
    fit(model, q0, p0, t, target.reshape(12, 6, 1, 2), adam_steps=60, lbfgs_steps=20, lr=0.05, substeps=5,
        integrator="leapfrog")
    learned = model.learned_parameters()
    assert learned["g_over_l"] == pytest.approx(10.9, rel=0.01)
    assert learned["damping"] == pytest.approx(0.3, abs=0.02)
    assert learned["length"] == pytest.approx(13.3, rel=0.005)
    assert (learned["pivot_x"], learned["pivot_y"]) == pytest.approx((16.0, 10.0), abs=0.05)


def held_angle_solution(g_over_l: float, damping: float, actuation: float, angle: torch.Tensor, rate: torch.Tensor,
                        inputs: torch.Tensor, dt: float) -> torch.Tensor:
    """θ at every frame of θ̈ = −ω² sin θ − b θ̇ + a·u, u held over each frame interval (inputs (T − 1, B))."""
    thetas = [angle]
    for u in inputs:
        def field(_, state, u=u):
            theta, omega = state
            return omega, -g_over_l * theta.sin() - damping * omega + actuation * u
        angles, rates = odeint(field, (angle, rate), torch.tensor([0.0, dt], dtype=F64), rtol=1e-11, atol=1e-11,
                               method="dopri5")
        angle, rate = angles[-1], rates[-1]
        thetas.append(angle)
    return torch.stack(thetas)


def test_actuated_pivot_pendulum_follows_its_angle_equation_under_inputs_held_per_frame():
    system = double("pivot_pendulum", g_over_l=10.9, damping=0.3, length=11.0, pivot=(16.0, 16.0), actuation=6.5,
                    learn_actuation=True)
    gen = torch.Generator().manual_seed(3)
    angle = (torch.rand(4, generator=gen, dtype=F64) - 0.5) * 6
    rate = (torch.rand(4, generator=gen, dtype=F64) - 0.5) * 4
    inputs = torch.rand(20, 4, 1, generator=gen, dtype=F64) * 2 - 1
    q0, p0 = swinging_bob(system, angle, rate)
    t = torch.arange(21, dtype=F64) * 0.1
    thetas = held_angle_solution(10.9, 0.3, 6.5, angle, rate, inputs[..., 0], 0.1)
    qs, ps = pivf.integrator("leapfrog", substeps=40).rollout(system, q0, p0, t, inputs)
    learned_angle, _ = system.angle(qs, ps)
    assert (wrap(learned_angle - thetas)).abs().max() < 2e-3  # rad, i.e. 0.02 px on an 11 px rod
    unforced, _ = pivf.integrator("leapfrog", substeps=40).rollout(system, q0, p0, t)
    assert (wrap(system.angle(unforced, ps)[0] - thetas)).abs().max() > 0.3  # the inputs matter


def test_pivot_pendulum_angle_reads_theta_and_its_rate_from_pixels_and_refuses_wrong_inputs():
    system = double("pivot_pendulum", length=10.0, pivot=(12.0, 8.0))
    angle, rate = torch.tensor([0.0, 1.0, -2.5], dtype=F64), torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    q, p = swinging_bob(system, angle, rate)
    torch.testing.assert_close(system.angle(q, p), (angle, rate))
    zero, _ = pivf.integrator("leapfrog").rollout(system, q, p, torch.arange(3, dtype=F64) * 0.1,
                                                  torch.zeros(2, 3, 1, dtype=F64))
    free, _ = pivf.integrator("leapfrog").rollout(system, q, p, torch.arange(3, dtype=F64) * 0.1)
    torch.testing.assert_close(zero, free)
    with pytest.raises(ValueError, match="takes 1 control inputs, got 2"):
        pivf.integrator("leapfrog").rollout(system, q, p, torch.arange(3, dtype=F64) * 0.1,
                                            torch.zeros(2, 3, 2, dtype=F64))
    with pytest.raises(ValueError, match="2 frame intervals but controls for 1"):
        pivf.integrator("leapfrog").rollout(system, q, p, torch.arange(3, dtype=F64) * 0.1,
                                            torch.zeros(1, 3, 1, dtype=F64))
    system.set_learned("actuation", 2.5)
    system.set_learned("g_over_l", 4.0)
    assert system.learned_parameters()["g_over_l"] == pytest.approx(4.0)
    assert system.actuation.item() == 2.5


def test_a_pendulum_starts_from_the_circle_its_bob_traces():
    """The pivot and rod from noisy positions on a ±0.8 rad arc, with 8 % of frames elsewhere, within
    5 %; a short arc, or points on no circle, leave the initial geometry as it was."""
    from pivf.plugins.physics.pivot_pendulum import fit_circle

    generator = torch.Generator().manual_seed(0)
    angle = torch.linspace(-0.8, 0.8, 500)
    arc = torch.stack([16 + 15.2 * angle.sin(), 9.15 + 15.2 * angle.cos()], -1)
    points = arc + 0.3 * torch.randn(500, 2, generator=generator)
    points[:40] = 32 * torch.rand(40, 2, generator=generator)
    pendulum = pivf.physics("pivot_pendulum")
    pendulum.prepare(points[None, :, None])
    learned = pendulum.learned_parameters()
    assert abs(learned["length"] - 15.2) < 0.05 * 15.2
    assert math.hypot(learned["pivot_x"] - 16, learned["pivot_y"] - 9.15) < 0.05 * 15.2
    short = torch.stack([16 + 15.2 * (0.1 * angle).sin(), 9.15 + 15.2 * (0.1 * angle).cos()], -1)
    assert fit_circle(short + 0.3 * torch.randn(500, 2, generator=generator)) is None
    assert fit_circle(32 * torch.rand(500, 2, generator=generator)) is None
    kept = pivf.physics("pivot_pendulum", fit_geometry=False)
    kept.prepare(points[None, :, None])
    assert kept.learned_parameters()["length"] == pytest.approx(8.0)
