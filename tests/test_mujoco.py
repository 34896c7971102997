"""MuJoCo tasks: MuJoCo simulates and renders, pivf projects; the stored positions are where the
bodies appear, and the truths in pixels are what pivf's physics plugins need to reproduce them."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import pivf
from pivf.core.data.dataset import load_dataset
from pivf.core.data.generate import generate_dataset
from pivf.core.data.npz import read_beside
from pivf.plugins.tasks.mujoco import mujoco_problem

needs_mujoco = pytest.mark.skipif(mujoco_problem() is not None, reason=f"MuJoCo: {mujoco_problem()}")

#: supersampling of the segmentation renders that locate the bodies
FINE = 8


def rendered_centres(task, trajectory) -> np.ndarray:
    """(N, T, K, 2): the centroid of each tracked geom's pixels in a segmentation render FINE times
    finer than the frames, in frame pixels."""
    mujoco, model = task._engine()
    size = task.params.image_size * FINE
    data = mujoco.MjData(model)
    geoms = [model.geom(name).id for name in task.tracked_geoms]
    n, t = trajectory.q.shape[:2]
    centres = np.zeros((n, t, len(geoms), 2))
    with mujoco.Renderer(model, size, size) as renderer:
        renderer.enable_segmentation_rendering()
        for i in range(n):
            for j in range(t):
                data.qpos[:] = trajectory.q[i, j].numpy()
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera=task.camera)
                segment = renderer.render()[..., 0]
                for k, geom in enumerate(geoms):
                    rows, columns = np.nonzero(segment == geom)
                    centres[i, j, k] = ((columns.mean() + 0.5) / FINE, (rows.mean() + 0.5) / FINE)
    return centres


@needs_mujoco
@pytest.mark.parametrize("name", ["mujoco_pendulum", "mujoco_pendulum_motor", "mujoco_spring"])
def test_projected_positions_are_where_the_bodies_are_rendered(name):
    task = pivf.task(name, supersample=FINE)  # an offscreen buffer large enough for the fine renders
    trajectory = task.simulate(3, 8, torch.Generator().manual_seed(0))
    error = np.abs(rendered_centres(task, trajectory) - trajectory.positions.numpy())
    assert error.max() < 0.5, error.max()
    assert error.mean() < 0.1, error.mean()


@needs_mujoco
def test_generated_mujoco_files_hold_frames_and_the_positions_beside_them(tmp_path):
    train, test = generate_dataset("mujoco_spring", tmp_path, n_train=3, n_valid=1, n_test=2, seed=0)
    dataset = load_dataset(train)
    assert tuple(dataset.train.shape) == (3, 12, 32, 32, 3) and tuple(dataset.test.shape) == (2, 30, 32, 32, 3)
    assert dataset.info.ground_truth == {"k": 4.0, "l": 6.0}
    positions = read_beside(test, "test_x", "positions")
    assert positions.shape == (2, 30, 2, 2)
    frames = dataset.test.float()
    for k, channel in ((0, 2), (1, 1)):  # ball 0 is blue, ball 1 green, as in PAIG's spring data
        x, y = np.rint(positions[0, 0, k] - 0.5).astype(int)
        others = [c for c in range(3) if c != channel]
        assert frames[0, 0, y, x, channel] > frames[0, 0, y, x, others].max() + 40
    background = frames[0, 0, 1, 1]  # a lit table, not black
    assert background.min() > 40


@needs_mujoco
def test_pendulum_seen_by_the_camera_follows_pivot_pendulum_with_the_true_parameters():
    task = pivf.task("mujoco_pendulum")
    trajectory = task.simulate(4, 30, torch.Generator().manual_seed(1))
    truth = task.true_parameters()
    system = pivf.physics("pivot_pendulum", g_over_l=truth["g_over_l"], damping=truth["damping"],
                          length=truth["length"], pivot=(truth["pivot_x"], truth["pivot_y"])).double()
    angle, rate = trajectory.q[:, 0, 0], trajectory.p[:, 0, 0]
    tangent = torch.stack((angle.cos(), -angle.sin()), -1)[:, None]
    q0 = trajectory.positions[:, 0]
    p0 = system.log_length.exp() * rate[:, None, None] * tangent
    with torch.no_grad():
        t = torch.arange(30.0, dtype=torch.float64) * 0.1
        qs, _ = pivf.integrator("leapfrog", substeps=50).rollout(system, q0, p0, t)
    assert (qs.transpose(0, 1) - trajectory.positions).abs().max() < 0.02
    assert trajectory.q[..., 0].abs().max() > 0.5  # real swings, where sin θ ≠ θ


@needs_mujoco
def test_spring_pair_seen_from_above_follows_paig_spring_with_the_true_k_and_l():
    task = pivf.task("mujoco_spring")
    trajectory = task.simulate(4, 30, torch.Generator().manual_seed(2))
    truth = task.true_parameters()
    system = pivf.physics("spring", **truth).double()
    pixels_per_metre = task.params.image_size / (2 * task.params.view)
    velocity = trajectory.p[:, 0].reshape(4, 2, 2) * pixels_per_metre * torch.tensor([1.0, -1.0], dtype=torch.float64)
    with torch.no_grad():
        qs, _ = pivf.integrator("leapfrog", substeps=20).rollout(system, trajectory.positions[:, 0], velocity,
                                                                 torch.arange(30.0, dtype=torch.float64) * 0.3)
    assert (qs.transpose(0, 1) - trajectory.positions).abs().max() < 0.02


@pytest.mark.slow(seconds=17)
def test_without_a_rendering_backend_the_tasks_are_listed_unavailable_and_refused_in_one_line(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "no-such-backend"}
    pivf_cli = [sys.executable, "-m", "pivf.cli"]
    listed = subprocess.run(pivf_cli + ["data", "tasks"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert all("unavailable:" in rows[name] for name in ("mujoco_pendulum", "mujoco_pendulum_motor", "mujoco_spring"))
    assert "unavailable" not in rows["spring_color"]
    refused = subprocess.run(pivf_cli + ["data", "generate", "mujoco_pendulum", "--out", str(tmp_path / "out")],
                             capture_output=True, text=True, env=env)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert "mujoco_pendulum" in refused.stderr and "unavailable" in refused.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
