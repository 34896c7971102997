"""The minimal plugin of every kind in docs/plugins.md (the python block after each
``<!-- guide: KIND -->``), installed as written as one real package, is found, builds, and does its
job with numbers: the physics conserves energy, the integrator converges at its declared order,
the encoder and decoder keep the shapes, the objective's loss trains, the task writes a dataset."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import pivf
from pivf.api import Pipeline, as_float
from pivf.cli.main import app
from pivf.core.kernel.hookspecs import HOOK_OF_KIND
from pivf.testing import assert_energy_conserved, assert_follows_hamiltons_equations, measured_order, random_state

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
SNIPPET = re.compile(r"<!-- guide: (\w+) -->\n```python\n(.*?)```", re.S)
DISTRIBUTION = "pivf-guide"


def guide_snippets() -> dict[str, str]:
    """kind → the source of its minimal plugin in the guide."""
    return {kind: source for kind, source in SNIPPET.findall(GUIDE.read_text(encoding="utf-8"))}


def test_the_guide_has_one_minimal_plugin_of_every_kind():
    assert sorted(guide_snippets()) == sorted(HOOK_OF_KIND)


@pytest.fixture
def guide_package(install_distribution, monkeypatch):
    """The guide's plugins as one installed distribution, a module and an entry point per kind."""
    modules = {f"pivf_guide_{kind}": source for kind, source in guide_snippets().items()}
    install_distribution(DISTRIBUTION, modules, {f"guide_{kind}": f"pivf_guide_{kind}" for kind in guide_snippets()})
    monkeypatch.setenv("PIVF_PLUGINS", ",".join(f"guide_{kind}" for kind in guide_snippets()))


GUIDE_PLUGINS = {("physics", "harmonic_trap"), ("integrator", "classic_rk4"), ("encoder", "soft_argmax"),
                 ("decoder", "gaussian_blobs"), ("objective", "pred_only"), ("task", "trap_balls")}


def test_every_guide_plugin_is_found_and_ok(guide_package):
    rows = {(row["kind"], row["name"]): row for row in pivf.list_plugins() if row["distribution"] == DISTRIBUTION}
    assert set(rows) == GUIDE_PLUGINS
    assert {key: row["status"] for key, row in rows.items()} == {key: "ok" for key in GUIDE_PLUGINS}


def test_the_physics_has_the_shape_of_its_objects_and_conserves_energy(guide_package):
    system = pivf.physics("harmonic_trap", k=0.5, n_objects=3).double()
    assert system.state_shape() == (3, 2)
    q0, p0 = random_state(system, batch=4, scale=4.0)
    assert_follows_hamiltons_equations(system, q0, p0)
    assert_energy_conserved(system, q0, p0)
    q, p = pivf.integrator("leapfrog", substeps=10).rollout(system, q0 + 16, p0, torch.linspace(0, 30, 101))
    energy = system.energy(q, p).detach()
    assert energy.shape == (101, 4)
    assert float(((energy - energy[0]).abs() / energy[0]).max()) < 1e-3
    assert system.learned_parameters() == {"k": pytest.approx(0.5)}


def test_the_integrator_converges_at_its_declared_order(guide_package):
    system = pivf.physics("pendulum").double().requires_grad_(False)
    q0, p0 = random_state(system, batch=4)
    rk4 = pivf.integrator("classic_rk4", substeps=20)
    assert rk4.order == 4
    assert abs(measured_order("classic_rk4", system, q0, p0, t_end=2.0) - 4) < 0.3
    q, p = rk4.rollout(system, q0, p0, torch.linspace(0, 3, 11))
    assert q.shape == (11, 4, 1)
    back, _ = rk4.rollout(system, q[-1], p[-1], torch.linspace(3, 0, 11))
    assert float((back[-1] - q0).abs().max()) < 1e-8


def trap_frames(n: int, length: int) -> torch.Tensor:
    task = pivf.task("trap_balls")
    return as_float(task.render(task.simulate(n, length, torch.Generator().manual_seed(0))))


@torch.no_grad()
def test_the_encoder_and_decoder_keep_the_shapes(guide_package):
    frames = trap_frames(3, 6)
    encoded = pivf.encoder("soft_argmax", input_steps=4, dt=0.5)(frames)
    assert encoded.q0.shape == encoded.p0.shape == (3, 2, 2)
    assert encoded.positions.shape == (3, 6, 2, 2)
    assert torch.equal(encoded.q0, encoded.positions[:, 3])
    assert 0 < float(encoded.positions.min()) and float(encoded.positions.max()) < 32
    decoder = pivf.decoder("gaussian_blobs")
    drawn = decoder(encoded.q0)
    assert drawn.shape == (3, 3, 32, 32) and 0 <= float(drawn.min()) and float(drawn.max()) <= 1
    assert float(decoder(torch.full((1, 2, 2), -1e3)).max()) == 0


def test_the_objective_trains_a_pipeline_of_the_guide_plugins(guide_package):
    torch.manual_seed(0)
    frames = trap_frames(8, 10)
    pipeline = Pipeline(pivf.encoder("soft_argmax", input_steps=4, dt=0.5), pivf.physics("harmonic_trap"),
                        pivf.integrator("classic_rk4", substeps=2), pivf.decoder("gaussian_blobs"), dt=0.5)
    objective = pivf.objective("pred_only")
    optimiser = torch.optim.Adam(pipeline.parameters(), lr=0.05)
    losses = []
    for _ in range(10):
        loss = objective.losses(pipeline, frames)["loss"]
        optimiser.zero_grad()
        loss.backward()
        assert pipeline.physics.log_k.grad is not None and pipeline.encoder.heat.weight.grad.abs().sum() > 0
        optimiser.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.9 * losses[0]


def test_the_task_writes_a_dataset_and_its_preset_resolves(guide_package, tmp_path):
    result = CliRunner().invoke(app, ["data", "generate", "trap_balls", "--out", str(tmp_path), "--n-train", "4",
                                      "--n-valid", "2", "--n-test", "2"])
    assert result.exit_code == 0, result.stderr
    train = np.load(tmp_path / "trap_balls_sl12.npz")
    assert train["train_x"].shape == (4, 12, 32, 32, 3) and train["valid_x"].shape == (2, 12, 32, 32, 3)
    assert np.load(tmp_path / "trap_balls_sl30.npz")["test_x"].shape == (2, 30, 32, 32, 3)
    sidecar = json.loads((tmp_path / "trap_balls_sl12.json").read_text())
    assert (sidecar["physics"], sidecar["ground_truth"], sidecar["dt"]) == ("harmonic_trap", {"k": 0.5}, 0.5)
    shown = CliRunner().invoke(app, ["config", "show", "--task", "trap_balls"])
    assert shown.exit_code == 0, shown.stderr
    assert "harmonic_trap" in shown.stdout and "leapfrog" in shown.stdout
