"""The example third-party package (examples/pivf-charged-particles), installed for real, works as
docs/plugins.md says: listed, configurable, and physically correct with pivf's integrators."""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import pivf
from pivf.cli.main import app


def test_it_is_listed_with_its_distribution():
    rows = [r for r in pivf.list_plugins("physics") if r["name"] == "charged_particles"]
    assert rows and rows[0]["distribution"] == "pivf-charged-particles" and rows[0]["status"] == "ok", (
        "install the example first: pip install ./examples/pivf-charged-particles")
    assert pivf.physics("charged_particles", coulomb=2.0).learned_parameters()["coulomb"] == pytest.approx(2.0)


def test_its_params_are_validated_by_the_cli():
    result = CliRunner().invoke(app, ["config", "show", "--physics", "charged_particles",
                                      "--set", "physics.coulomb=-3"])
    assert result.exit_code == 2
    assert "physics 'charged_particles': coulomb: Input should be greater than 0" in result.stderr


def test_energy_is_conserved_by_leapfrog():
    system = pivf.physics("charged_particles", coulomb=5.0).double()
    q0 = torch.tensor([[[10.0, 16.0], [22.0, 16.0]]], dtype=torch.float64)
    p0 = torch.tensor([[[0.0, 1.0], [0.0, -1.0]]], dtype=torch.float64)
    q, p = pivf.integrator("leapfrog", substeps=10).rollout(system, q0, p0, torch.linspace(0, 20, 201))
    energy = system.energy(q, p)
    assert (energy - energy[0]).abs().max() / energy[0].abs() < 1e-3


def test_force_is_minus_grad_of_potential():
    system = pivf.physics("charged_particles").double()
    q = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    p = torch.zeros_like(q)
    (grad,) = torch.autograd.grad(system.hamiltonian(q, p).sum(), q)
    assert torch.allclose(system.dp_dt(q, p), -grad)
