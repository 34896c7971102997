"""dm_control tasks: the suite's own physics and camera make the frames, and the stored true states
are the suite's states at the frames' instants, one frame interval of dm_control steps apart."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import pivf
from pivf.core.data.dataset import load_dataset
from pivf.core.data.generate import generate_dataset
from pivf.core.data.npz import read_beside
from pivf.core.kernel.errors import PluginParamsError
from pivf.plugins.tasks.dm_control import dm_control_problem

pytestmark = pytest.mark.skipif(dm_control_problem() is not None, reason=f"dm_control: {dm_control_problem()}")

#: task, its suite domain, state size, objects, the domain's timestep in seconds
DOMAINS = [("dm_pendulum", "pendulum", 1, 1, 0.02), ("dm_cartpole", "cartpole", 2, 2, 0.01),
           ("dm_acrobot", "acrobot", 2, 2, 0.01)]
#: the suite pendulum's bob (kg), pole (m), moment of inertia about the hinge (kg·m²: m L² plus the
#: bob's own 2/5 m r²) and gravity (m/s²)
MASS, POLE, INERTIA, GRAVITY = 1.0, 0.5, 1.0 * 0.5**2 + 0.4 * 1.0 * 0.05**2, 9.81


def suite_physics(domain: str):
    """The domain's physics as dm_control's own suite loads it, without pivf."""
    from dm_control import suite

    return suite.load(domain, "swingup").physics


def pendulum_energy(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """E = ½ I θ̇² + m g L cos θ, θ from upright."""
    return 0.5 * INERTIA * p[..., 0] ** 2 + MASS * GRAVITY * POLE * torch.cos(q[..., 0])


@pytest.mark.parametrize(("name", "domain", "state", "objects", "timestep"), DOMAINS)
def test_generated_files_hold_the_suites_frames_of_the_stored_states(tmp_path, name, domain, state, objects,
                                                                      timestep):
    params = {"train_length": 3, "test_length": 4, "dt": 2 * timestep}
    train, test = generate_dataset(name, tmp_path, n_train=2, n_valid=1, n_test=1, seed=0, params=params)
    dataset = load_dataset(train)
    assert tuple(dataset.train.shape) == (2, 3, 32, 32, 3) and tuple(dataset.test.shape) == (1, 4, 32, 32, 3)
    assert math.isclose(json.loads(train.with_suffix(".json").read_text())["dt"], 2 * timestep)
    q, p = read_beside(test, "test_x", "q"), read_beside(test, "test_x", "p")
    assert q.dtype == p.dtype == np.float64 and q.shape == p.shape == (1, 4, state)
    assert read_beside(test, "test_x", "positions").shape == (1, 4, objects, 2)
    frames = np.load(test)["test_x"][0]
    physics = suite_physics(domain)
    for j in range(4):
        with physics.reset_context():
            physics.data.qpos[:], physics.data.qvel[:] = q[0, j], p[0, j]
        assert np.array_equal(physics.render(32, 32, camera_id=0), frames[j])
        if j:
            assert not np.array_equal(frames[j], frames[j - 1])  # it moves
    with physics.reset_context():
        physics.data.qpos[:], physics.data.qvel[:] = q[0, 0], p[0, 0]
    physics.step(2)  # two of the domain's steps make a frame interval of 2 timesteps
    assert np.abs(physics.data.qpos - q[0, 1]).max() < 1e-9 and np.abs(physics.data.qvel - p[0, 1]).max() < 1e-9


def test_the_undamped_pendulum_keeps_its_energy_and_the_suites_damping_spends_it():
    swings = pivf.task("dm_pendulum", damping=0).simulate(4, 100, torch.Generator().manual_seed(1))
    energy = pendulum_energy(swings.q, swings.p)
    scale = MASS * GRAVITY * POLE
    assert (energy - energy[:, :1]).abs().max() < 0.05 * scale  # the suite's Euler step at 0.02 s
    assert swings.q[..., 0].std(1).min() > 0.1  # every sequence swings
    damped = pivf.task("dm_pendulum").simulate(4, 100, torch.Generator().manual_seed(1))
    energy = pendulum_energy(damped.q, damped.p)
    rate = damped.p[..., 0]
    spent = torch.cumulative_trapezoid(0.1 * rate**2, dx=0.02, dim=1)  # hinge damping 0.1 N·m·s
    assert (energy[:, 1:] + spent - energy[:, :1]).abs().max() < 0.05 * scale
    assert spent[:, -1].max() > 0.2 * scale  # a loss the balance could not hide


def test_the_bob_is_drawn_where_its_projected_position_says_and_moves():
    task = pivf.task("dm_pendulum", damping=0)
    swing = task.simulate(4, 20, torch.Generator().manual_seed(3))
    frames, backdrop = task.render_with_backdrop(swing)
    assert torch.equal(frames, task.render(swing))
    x, y = swing.positions.floor().long().unbind(-1)  # the pixel of the bob's centre
    n, t = torch.meshgrid(torch.arange(4), torch.arange(20), indexing="ij")
    assert (backdrop[n, t, y[..., 0], x[..., 0]] == 0).all()  # the bob, not scenery
    assert backdrop.mean() > 0.9
    travel = (swing.positions[:, 1:] - swing.positions[:, :-1]).norm(dim=-1).sum((1, 2))
    assert travel.min() > 0.5 and travel.max() > 5  # pixels along 20 frames (0.4 s); one starts near the bottom


def test_advance_by_a_whole_frame_reaches_the_next_frame():
    task = pivf.task("dm_cartpole")
    seq = task.simulate(1, 3, torch.Generator().manual_seed(0))
    half, whole = task.advance(seq, [0.5, 1.0])
    assert (whole.q[:, :-1] - seq.q[:, 1:]).abs().max() < 1e-9
    assert (whole.positions[:, :-1] - seq.positions[:, 1:]).abs().max() < 1e-6
    between = (half.q[:, :-1] - seq.q[:, :-1]).abs().max()
    assert 0 < between < (seq.q[:, 1:] - seq.q[:, :-1]).abs().max() * 1.5


def test_a_frame_interval_must_be_whole_steps_of_the_domain():
    with pytest.raises(PluginParamsError, match="whole multiple of the domain's timestep 0.02"):
        pivf.task("dm_pendulum", dt=0.03)
    assert pivf.task("dm_acrobot", dt=0.05).steps_per_frame() == 5


@pytest.mark.slow(seconds=10)
def test_without_dm_control_a_dm_task_is_refused_in_one_line_naming_the_extra(tmp_path):
    out = tmp_path / "out"
    script = ("import sys; sys.modules['dm_control'] = None; "
              f"sys.argv = ['pivf', 'data', 'generate', 'dm_pendulum', '--out', {str(out)!r}]; "
              "from pivf.cli.main import main; main()")
    refused = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr
    said = refused.stderr.splitlines()
    assert len(said) == 1 and said[0].startswith("error: "), refused.stderr
    assert "dm_pendulum" in said[0] and "pip install 'pivf[dm_control]'" in said[0]
    assert not out.exists()


@pytest.mark.slow(seconds=25)
def test_hgn_fast_recipe_trains_on_dm_pendulum(tmp_path):
    params = ["--set", "train_length=16", "--set", "test_length=46"]
    subprocess.run([sys.executable, "-m", "pivf.cli", "data", "generate", "dm_pendulum", "--out", str(tmp_path),
                    "--n-train", "4", "--n-valid", "1", "--n-test", "1", *params], check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "pivf.cli", "train", "--task", "dm_pendulum", "--recipe", "fast",
                          "--data", str(tmp_path / "dm_pendulum_sl16_dt002_b1.npz"), "--set", "training.steps=2",
                          "--set", "training.batch_size=2", "--out", str(tmp_path / "runs"), "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)
    assert metrics["task"] == "dm_pendulum" and metrics["physics"] == "hamiltonian_latent"
    assert metrics["train"]["steps"] == 2 and math.isfinite(metrics["eval"]["mse"]) and metrics["eval"]["vpt"] >= 0
