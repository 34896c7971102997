"""Control from pixels: the planner, the MuJoCo pendulum under a motor, and a model learned from its
video that swings it up better than random inputs do."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import pivf
from pivf.core.apps.control import (
    MPC,
    ControlledTask,
    CrossEntropyPlanner,
    PlannerSettings,
    RandomPolicy,
    run_episode,
    summarise,
    true_state,
)
from pivf.core.apps.control_run import control_run, live_task
from pivf.core.data.dataset import load_dataset
from pivf.core.data.generate import generate_dataset
from pivf.core.data.npz import SPLITS
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.errors import ConfigError, DataError, PivfUserError
from pivf.core.training.train import Trainer
from pivf.plugins.tasks.mujoco import mujoco_problem

needs_mujoco = pytest.mark.skipif(mujoco_problem() is not None, reason=f"MuJoCo: {mujoco_problem()}")
UPRIGHT = math.pi
PIVF = [sys.executable, "-m", "pivf.cli"]


def test_the_cross_entropy_planner_finds_the_cheapest_input_sequence():
    target = torch.tensor([[0.6], [-0.3], [0.9], [-0.8]])
    settings = PlannerSettings(horizon=4, population=100, elites=10, iterations=6, spread=1.0, knots=4)
    planner = CrossEntropyPlanner(settings, 1, torch.Generator().manual_seed(0))
    first = planner.plan(lambda inputs: ((inputs - target) ** 2).sum((1, 2)))
    assert first.item() == pytest.approx(0.6, abs=0.05)
    assert planner.mean[:3, 0].tolist() == pytest.approx([-0.3, 0.9, -0.8], abs=0.05)  # shifted for the next step
    planner.reset()
    clipped = planner.plan(lambda inputs: ((inputs - 3.0) ** 2).sum((1, 2)))
    assert 0.99 < clipped.item() <= 1.0  # inputs stay in [−1, 1]


def test_control_needs_a_task_with_a_live_system_and_a_physics_the_task_can_plan_on():
    with pytest.raises(PivfUserError, match=r"^task 'spring_color' has no live system to control \(a ControlledTask\); "
                                            r"tasks that have one: mujoco_pendulum_motor$"):
        live_task("spring_color", {}, {})
    task = live_task("mujoco_pendulum_motor", {}, {"mass": 1.5})
    assert task.true_parameters()["actuation"] == pytest.approx(5.3 / (1.5 * 0.9**2))
    with pytest.raises(ConfigError, match="physics 'spring' has no pendulum angle to control"):
        task.true_model(pivf.physics("spring"))


@pytest.mark.slow(seconds=16)
@needs_mujoco
def test_planning_through_the_true_model_swings_the_motor_pendulum_up_holds_it_at_a_goal_and_random_inputs_do_not():
    task = pivf.task("mujoco_pendulum_motor")
    environment = task.environment()
    # 2 substeps and 3 refits (the defaults are 5 and 4) plan as well here at a third of the cost
    assert isinstance(task, ControlledTask)
    truth = task.true_parameters()
    model = task.true_model(pivf.physics("pivot_pendulum"))
    assert model.learned_parameters() == pytest.approx({key: truth[key] for key in model.learned_parameters()})
    mpc = MPC(task, model, pivf.integrator("leapfrog", substeps=2), task.params.dt, true_state(task), UPRIGHT,
              PlannerSettings(iterations=3),
              torch.Generator().manual_seed(0))
    swung = run_episode(task, environment, mpc, 60, UPRIGHT, 0.05, history=4)
    angles = [angle for angle, _ in swung.states]
    assert swung.success, [round(a, 2) for a in angles[::5]]
    # the motor alone cannot lift the bob: it has to pump, so the first swing falls back
    assert max(abs(a) for a in angles[:8]) < 2.5
    # another goal, off the vertical: holding it takes a steady input of 0.65, which the planner must find
    tilted = math.pi - 0.4
    mpc.goal = tilted
    held = run_episode(task, environment, mpc, 60, tilted, 0.05, history=4)
    assert held.success, [round(angle, 2) for angle, _ in held.states[::5]]
    flailing = [run_episode(task, environment, RandomPolicy(torch.Generator().manual_seed(k)), 60, UPRIGHT, 0.05, 4)
                for k in range(3)]
    assert summarise(flailing)["success_rate"] == 0
    assert swung.total > 2 * max(episode.total for episode in flailing)  # returns are negative costs


@needs_mujoco
def test_video_recorded_under_a_motor_keeps_its_inputs_beside_the_frames(tmp_path):
    train, _ = generate_dataset("mujoco_pendulum_motor", tmp_path, n_train=3, n_valid=1, n_test=2, seed=0)
    dataset = load_dataset(train)
    assert dataset.n_controls == 1
    for frames, controls in ((dataset.train, dataset.train_controls), (dataset.test, dataset.test_controls)):
        assert controls.shape == (*frames.shape[:2], 1) and controls.dtype == torch.float32
        assert controls.abs().max() <= 1 and controls.std() > 0.2  # random inputs in [−1, 1]
    # a file whose controls were damaged is refused with one line
    with np.load(train) as archive:
        arrays = {key: archive[key] for key in archive.files}
    bad = tmp_path / "bad" / train.name
    bad.parent.mkdir()
    arrays["train_controls"][0, 0, 0] = np.nan
    np.savez(bad, **arrays)
    with pytest.raises(DataError, match="'train_controls' holds non-finite inputs"):
        load_dataset(bad)
    del arrays["valid_controls"]
    arrays["train_controls"][0, 0, 0] = 0.0
    np.savez(bad, **arrays)
    with pytest.raises(DataError, match="'train_x' was recorded under controls but 'valid_x' has none"):
        load_dataset(bad)
    assert set(SPLITS) <= set(arrays)


@needs_mujoco
def test_an_unactuated_physics_is_refused_for_video_recorded_under_controls(tmp_path):
    generate_dataset("mujoco_pendulum_motor", tmp_path / "data", n_train=3, n_valid=1, n_test=2, seed=0)
    refused = subprocess.run(PIVF + ["train", "--task", "mujoco_pendulum_motor", "--data", str(tmp_path / "data"),
                                         "--physics", "bouncing", "--out",
                                         str(tmp_path / "runs")], capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr
    assert "physics 'bouncing' takes 0 control inputs but the dataset" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "runs").exists()


@pytest.mark.slow(seconds=160)
@needs_mujoco
def test_a_pendulum_learned_from_video_under_random_torques_is_swung_up_from_pixels(tmp_path):
    """The CI-sized version of docs/control.md: 2,400 frames of video under random torques, a few
    hundred steps, then one control episode from pixels against random inputs."""
    config = resolve_config(task="mujoco_pendulum_motor", flags={
        "training.device": "cpu", "data.cache_dir": str(tmp_path / "cache"), "logging.out": str(tmp_path),
        "logging.tensorboard": False, "logging.run_name": "motor"}, overrides=[
        "data.n_train=200", "data.n_valid=20", "data.n_test=10", "training.epochs=30", "training.eval_every=10",
        "objective.warmup_steps=60", "objective.horizon_steps=60"])
    metrics = Trainer(config, log=lambda _msg: None, quiet=True).fit()
    params = metrics["params"]
    assert params["g_over_l"]["rel_error"] < 0.2 and params["actuation"]["rel_error"] < 0.25, params
    run = tmp_path / "motor"
    learned = control_run(run, "model", episodes=1, steps=60, log=lambda _msg: None)
    flailing = control_run(run, "random", episodes=3, steps=60, log=lambda _msg: None)
    assert learned["training_frames"] == 220 * 12
    assert learned["mean_return"] > 0.5 * flailing["mean_return"], (learned, flailing)  # half the random cost
    shown = subprocess.run(PIVF + ["control", str(run), "--policy", "random", "--episodes", "1", "--steps", "8",
                                       "--filmstrip", str(tmp_path / "strip.png"), "--out", str(tmp_path / "r.json")],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads((tmp_path / "r.json").read_text())["episodes"] == 1 and (tmp_path / "strip.png").is_file()
    edited = subprocess.run(PIVF + ["control", str(run), "--edit", "mass=2"], capture_output=True, text=True)
    assert edited.returncode == 2
    assert "cannot set 'mass'; allowed: g_over_l, length, damping, actuation" in edited.stderr
