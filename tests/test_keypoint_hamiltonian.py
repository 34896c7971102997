"""The keypoint Hamiltonian: a learned energy over object positions with rods as constraints.

Checked against the exact pendulum, for energy and rod lengths along a double pendulum, for the
momentum free bodies keep, for the rods it finds in positions, and for gradients reaching every
learned part."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

import pivf
from pivf.core.kernel.errors import ConfigError, PluginParamsError

F64 = torch.float64


class Downhill(nn.Module):
    """V = −pull·Σ ŷ_i: a uniform field pulling every object down the image (+y)."""

    def __init__(self, pull: float) -> None:
        super().__init__()
        self.pull = pull

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        return -self.pull * centred[..., 1].sum(-1)


def with_gravity(pull: float, **params) -> nn.Module:
    system = pivf.physics("keypoint_hamiltonian", **params).double()
    system.potential = Downhill(pull)
    return system


def on_circle(pivot: torch.Tensor, length: float, angle: torch.Tensor) -> torch.Tensor:
    return pivot + length * torch.stack((angle.sin(), angle.cos()), -1)


def test_one_rod_from_a_pivot_swings_as_the_exact_pendulum():
    # V = −pull·ŷ with ŷ in quarter sides (8 px): a pull of 8·pull px/time² on the bob; ω² = 8·pull/ℓ
    omega2, length = 3.0, 8.0
    system = with_gravity(omega2 * length / 8, n_objects=1, rods=["pivot-0"])
    with torch.no_grad():
        system.pivots[0] = torch.tensor([16.0, 16.0], dtype=F64)
        system.log_lengths[0] = math.log(length)
    angle = torch.tensor([0.5, 2.0, -1.0], dtype=F64)
    rate = torch.tensor([0.0, 1.0, 3.5], dtype=F64)  # the last goes over the top
    pivot = system.pivots[0].detach()
    q0 = on_circle(pivot, length, angle)[:, None]
    tangent = torch.stack((angle.cos(), -angle.sin()), -1)
    p0 = (length * rate[:, None] * tangent)[:, None]
    t = torch.arange(31, dtype=F64) * 0.125
    with torch.no_grad():
        qs, _ = pivf.integrator("leapfrog", substeps=16).rollout(system, q0, p0, t)

    def field(_, state):
        theta, omega = state
        return omega, -omega2 * theta.sin()
    thetas, _ = odeint(field, (angle, rate), t, rtol=1e-10, atol=1e-10, method="dopri5")
    expected = on_circle(pivot, length, thetas)
    assert (qs[:, :, 0] - expected).abs().max() < 0.03
    assert ((qs[:, :, 0] - pivot).norm(dim=-1) - length).abs().max() < 1e-9


def test_a_double_pendulum_keeps_its_rods_and_its_energy_to_second_order():
    system = with_gravity(2.0, n_objects=2, rods=["pivot-0", "0-1"])
    with torch.no_grad():
        system.pivots[0] = torch.tensor([16.0, 16.0], dtype=F64)
        system.log_lengths[0] = math.log(6.0)
        system.log_lengths[2] = math.log(5.0)
        system.log_masses[0] = math.log(0.5)
    gen = torch.Generator().manual_seed(0)
    first = on_circle(system.pivots[0].detach(), 6.0, torch.rand(4, generator=gen, dtype=F64) * 3)
    second = on_circle(first, 5.0, torch.rand(4, generator=gen, dtype=F64) * 6)
    q0 = torch.stack((first, second), 1)
    q0, p0 = system.constrain(q0, torch.randn(4, 2, 2, generator=gen, dtype=F64) * 5)
    t = torch.arange(21, dtype=F64) * 0.125
    drifts = []
    for substeps in (4, 8):
        with torch.no_grad():
            qs, ps = pivf.integrator("leapfrog", substeps=substeps).rollout(system, q0, p0, t)
        energy = system.energy(qs, ps)
        drifts.append((energy - energy[0]).abs().max())
        assert ((qs[..., 0, :] - system.pivots[0]).norm(dim=-1) - 6.0).abs().max() < 1e-4
        assert ((qs[..., 1, :] - qs[..., 0, :]).norm(dim=-1) - 5.0).abs().max() < 1e-4
        assert (qs[-1] - qs[0]).abs().max() > 3.0  # it moved
    assert drifts[0] / drifts[1] > 3.0  # halving the step quarters the drift (2 for a first-order method)


def test_constrain_drops_the_velocity_along_a_rod_and_keeps_the_rest():
    system = with_gravity(0.0, n_objects=1, rods=["pivot-0"])
    with torch.no_grad():
        system.pivots[0] = torch.tensor([10.0, 10.0], dtype=F64)
        system.log_lengths[0] = math.log(5.0)
    q = torch.tensor([[[10.0, 16.0]]], dtype=F64)  # one pixel too far, straight below
    p = torch.tensor([[[2.0, 3.0]]], dtype=F64)
    q, p = system.constrain(q, p)
    torch.testing.assert_close(q, torch.tensor([[[10.0, 15.0]]], dtype=F64))
    torch.testing.assert_close(p, torch.tensor([[[2.0, 0.0]]], dtype=F64))


def test_free_bodies_with_a_pair_potential_keep_their_momentum_and_the_heavy_one_moves_less():
    system = pivf.physics("keypoint_hamiltonian", n_objects=2, rods=[], potential="pairwise").double()
    with torch.no_grad():
        system.log_masses[0] = math.log(4.0)
    q0 = torch.tensor([[[10.0, 16.0], [22.0, 16.0]]], dtype=F64)
    p0 = torch.tensor([[[0.0, 2.0], [0.0, -0.5]]], dtype=F64)
    qs, ps = pivf.integrator("leapfrog", substeps=4).rollout(system, q0, p0, torch.arange(41, dtype=F64) * 0.125)
    masses = system.masses().detach()[:, None]
    momentum = (masses * ps).sum(-2)  # zero at the start: the centre of mass stays where it is
    torch.testing.assert_close(momentum, torch.zeros_like(momentum), rtol=0, atol=1e-9)
    moved = qs[-1, 0] - qs[0, 0]
    assert moved[0].norm() > 2.0  # the pair pulled them
    torch.testing.assert_close(moved[1], -moved[0] / 4, rtol=0, atol=1e-6)


def test_prepare_finds_a_double_pendulums_rods_and_no_rods_between_free_or_huddled_objects():
    gen = torch.Generator().manual_seed(1)
    first = on_circle(torch.tensor([15.0, 17.0]), 7.0, torch.rand(8, 12, generator=gen) * 4 - 2)
    second = on_circle(first, 6.0, torch.rand(8, 12, generator=gen) * 6)
    chain = torch.stack((first, second), 2)  # (B, T, N, 2)
    system = pivf.physics("keypoint_hamiltonian", n_objects=2)
    system.prepare(chain)
    assert system.active.tolist() == [1.0, 0.0, 1.0]
    assert system.learned_parameters().keys() >= {"rod_pivot_0", "rod_0_1"}
    assert abs(system.learned_parameters()["rod_pivot_0"] - 7.0) < 0.05
    assert abs(system.learned_parameters()["rod_0_1"] - 6.0) < 0.05
    torch.testing.assert_close(system.pivots[0].detach(), torch.tensor([15.0, 17.0]), rtol=0, atol=0.05)
    for positions in (torch.rand(8, 12, 2, 2, generator=gen) * 30,  # free
                      16 + torch.rand(8, 12, 2, 2, generator=gen)):  # an untrained encoder's huddle
        free = pivf.physics("keypoint_hamiltonian", n_objects=2)
        free.prepare(positions)
        assert free.active.tolist() == [0.0, 0.0, 0.0]


def test_a_rollout_loss_reaches_the_potential_the_masses_and_the_rods():
    system = pivf.physics("keypoint_hamiltonian", n_objects=2, rods=["pivot-0", "0-1"])
    q0 = torch.tensor([[[16.0, 24.0], [16.0, 31.0]]]) + torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])
    q0, p0 = system.constrain(q0, torch.ones(1, 2, 2))
    qs, _ = pivf.integrator("leapfrog", substeps=2).rollout(system, q0, p0, torch.arange(6.0) * 0.125)
    qs.pow(2).sum().backward()
    for name, parameter in system.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("rods", [["0-0"], ["pivot-2"], ["pivot"], ["a-b"]])
def test_a_rod_the_scene_cannot_have_is_refused(rods):
    with pytest.raises((ConfigError, PluginParamsError), match="rod"):
        pivf.physics("keypoint_hamiltonian", n_objects=2, rods=rods)


def test_smooth_solvers_are_refused_for_rods_and_move_free_objects():
    from pivf.core.kernel.config import resolve_config

    flags = {"objective.name": "paig", "training.recipe": "keypoints", "integrator.name": "dopri5"}
    with pytest.raises(ConfigError, match="cannot apply the hard constraints"):
        resolve_config(task="pendulum", flags=flags)
    free = resolve_config(task="two_body", flags=flags, overrides=["physics.rods=[]"])
    assert free.integrator.name == "dopri5"
