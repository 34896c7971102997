"""The package's own tests, on pivf's checks (``pivf.testing``): Hamilton's equations, energy
conservation, the order of pivf's integrators on this system, and videos the task draws."""
from __future__ import annotations

import pytest
import torch

import pivf
from pivf.api import Trajectory, UnknownPluginError
from pivf.testing import (
    assert_energy_conserved,
    assert_follows_hamiltons_equations,
    assert_separable_as_declared,
    measured_order,
    random_state,
    registered,
)
from pivf_charged import ChargedColor, ChargedParticles


def test_forces_follow_from_the_coulomb_energy():
    system = pivf.physics("charged_particles", coulomb=5.0).double()
    assert_follows_hamiltons_equations(system, *random_state(system, scale=8.0))
    assert_energy_conserved(system, *random_state(system, scale=8.0, seed=1))
    assert system.separable
    assert_separable_as_declared(system, *random_state(system, scale=8.0, seed=2))


@pytest.mark.parametrize("integrator, order", [("euler", 1), ("leapfrog", 2), ("yoshida", 4)])
def test_pivf_integrators_keep_their_order_on_this_system(integrator, order):
    system = pivf.physics("charged_particles", coulomb=5.0).double()
    q0 = torch.tensor([[[10.0, 16.0], [22.0, 16.0]]], dtype=torch.float64)
    p0 = torch.tensor([[[0.0, 0.5], [0.0, -0.5]]], dtype=torch.float64)
    assert abs(measured_order(integrator, system, q0, p0, t_end=2.0) - order) <= 0.3


def test_the_task_draws_bound_pairs_that_stay_in_the_picture():
    task = pivf.task("charged_color")
    assert task.true_parameters() == {"coulomb": 50.0}
    trajectory: Trajectory = task.simulate(8, 12, torch.Generator().manual_seed(0))
    assert trajectory.positions.shape == (8, 12, 2, 2)
    assert ((trajectory.positions > 2) & (trajectory.positions < 30)).all()
    frames = task.render(trajectory)
    assert frames.shape == (8, 12, 32, 32, 3) and frames.dtype == torch.uint8 and frames.float().mean() > 1


def test_a_variant_registered_for_one_test_is_usable_by_name():
    class Repulsive(ChargedParticles):
        name = "charged_repulsive"
        description = "like charges only"

    with registered(Repulsive):
        system = pivf.physics("charged_repulsive", charges=[1.0, 1.0])
        assert system.learned_parameters()["coulomb"] == pytest.approx(1.0)
    with pytest.raises(UnknownPluginError, match="unknown physics 'charged_repulsive'"):
        pivf.physics("charged_repulsive")


def test_the_task_is_listed_beside_the_physics():
    rows = {(r["kind"], r["name"]): r for r in pivf.list_plugins()}
    assert rows[("task", "charged_color")]["distribution"] == "pivf-charged-particles"
    assert rows[("physics", "charged_particles")]["status"] == "ok"
    assert ChargedColor.preset["physics"]["name"] == "charged_particles"
