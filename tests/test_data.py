"""Datasets: every task simulates and renders correctly, files round-trip, bad files fail in one line."""
from __future__ import annotations

import functools
import json
import zipfile

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

import pivf
from pivf.cli.data import data_app
from pivf.core.data.dataset import load_dataset
from pivf.core.data.generate import ensure_dataset, generate_dataset, single_threaded
from pivf.core.data.names import NameTemplate
from pivf.core.data.npz import read_beside
from pivf.core.data.task import Trajectory
from pivf.core.kernel.errors import DataError
from pivf.core.kernel.registry import registry

PAIG_TASKS = ["bouncing_balls", "spring_color", "spring_color_half", "3bp_color", "mnist_spring_color"]
HGN_TASKS = ["mass_spring", "damped_spring", "pendulum", "two_body", "three_body", "double_pendulum"]
# listed even where unavailable (tests/test_mujoco.py)
MUJOCO_TASKS = ["mujoco_pendulum", "mujoco_pendulum_motor", "mujoco_spring"]
DM_CONTROL_TASKS = ["dm_pendulum", "dm_cartpole", "dm_acrobot"]
N = 6
HGN_BACKGROUND = torch.tensor([81.0, 88.0, 93.0])


@functools.cache
def sample(name: str, role: str, **params) -> tuple[object, Trajectory, torch.Tensor]:
    """(task, trajectory, frames) of N sequences, made once per session."""
    task = pivf.task(name, **params)
    with single_threaded("cpu"):  # as generation runs
        trajectory = task.simulate(N, task.length(role), torch.Generator().manual_seed(7))
        return task, trajectory, task.render(trajectory)


def centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity centroid (x, y) of (..., H, W), pixel i covering [i, i + 1)."""
    height, width = image.shape[-2:]
    mass = image.sum((-2, -1))
    x = (image.sum(-2) * (torch.arange(width) + 0.5)).sum(-1) / mass
    y = (image.sum(-1) * (torch.arange(height) + 0.5)).sum(-1) / mass
    return torch.stack((x, y), -1)


def object_images(name: str, role: str) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """Per drawn object: (intensity image (N, T, H, W), positions (N, T, 2), how far it reaches)."""
    if name == "mnist_spring_color":
        task, trajectory, frames = sample(name, role, background="none")
        return [(frames[..., j].float(), trajectory.positions[:, :, j], 12.0) for j in range(2)]
    task, trajectory, frames = sample(name, role)
    k = trajectory.positions.shape[2]
    if name in PAIG_TASKS:
        return [(frames[..., 2 - j].float(), trajectory.positions[:, :, j], task.params.radius) for j in range(k)]
    out = []
    for j in range(k):  # HGN colours share channels: draw each ball alone, take red above the background
        alone = Trajectory(trajectory.q, trajectory.p, trajectory.positions[:, :, j:j + 1])
        image = task.render(alone)[..., 0].float() - HGN_BACKGROUND[0]
        out.append((image, trajectory.positions[:, :, j], task.params.radius))
    return out


@pytest.mark.parametrize("name", PAIG_TASKS + HGN_TASKS)
@pytest.mark.parametrize("role", ["train", "test"])
def test_task_frames_shape_and_range(name, role):
    task, trajectory, frames = sample(name, role)
    size = task.params.image_size
    assert frames.dtype == torch.uint8
    assert tuple(frames.shape) == (N, task.length(role), size, size, 3)
    assert trajectory.q.shape[:2] == (N, task.length(role))
    assert frames.max() >= 140, "objects are drawn at (nearly) full colour"
    assert frames.float().mean() < 200, "frames are not blown out"


@pytest.mark.parametrize("name", PAIG_TASKS + HGN_TASKS)
def test_rendered_centroid_is_the_simulated_position(name):
    errors = []
    for image, positions, reach in object_images(name, "test"):
        size = image.shape[-1]
        inside = ((positions > reach + 1) & (positions < size - reach - 1)).all(-1)
        if name == "mnist_spring_color":  # digits hide each other where their boxes overlap
            _, trajectory, _ = sample(name, "test", background="none")
            gap = (trajectory.positions[:, :, 0] - trajectory.positions[:, :, 1]).abs().max(-1).values
            inside &= gap > 2 * reach
        assert inside.float().mean() > 0.3, "too few frames to check"
        errors.append((centroid(image)[inside] - positions[inside].float()).norm(dim=-1))
    worst = torch.cat(errors).max().item()
    assert worst < 0.5, f"centroid off by {worst:.3f} px"


@pytest.mark.parametrize("name", PAIG_TASKS + HGN_TASKS)
def test_ground_truth_energy(name):
    task, trajectory, _ = sample(name, "test")
    physics = task.physics_system()
    with torch.no_grad():
        energy = physics.energy(trajectory.q, trajectory.p)  # (N, T)
    if physics.conservative:
        scale = energy.abs().amax(1).clamp_min(1e-12)
        drift = ((energy - energy[:, :1]).abs().amax(1) / scale).max().item()
        assert drift < 1e-5, f"relative energy drift {drift:.2e}"
    else:  # damping only ever removes energy
        assert (energy.diff(dim=1) <= 1e-12).all()
        assert (energy[:, -1] < 0.1 * energy[:, 0]).all()


def test_ground_truth_uses_the_task_constants():
    assert pivf.task("spring_color").true_parameters() == {"k": 4.0, "l": 6.0}
    assert pivf.task("mnist_spring_color").true_parameters() == {"k": 2.0, "l": 12.0}
    assert pivf.task("3bp_color").true_parameters() == {"g": 60.0}
    assert pivf.task("two_body").true_parameters() == {"g": 1.0}
    assert pivf.task("spring_color", ground_truth={"k": 3.0}).true_parameters() == {"k": 3.0, "l": 6.0}
    spring = pivf.task("spring_color", ground_truth={"k": 3.0}).physics_system()
    assert spring.learned_parameters()["k"] == pytest.approx(3.0)


@pytest.mark.parametrize("name", PAIG_TASKS + HGN_TASKS)
def test_task_defaults_match_presets(name):
    data = registry().get("task", name).preset["data"]
    params = pivf.task(name).params
    assert (params.image_size, params.dt) == (data["image_size"], data["dt"])
    assert params.train_length >= data["input_steps"] + data["pred_steps"]
    assert params.test_length == data["input_steps"] + data["pred_steps"] + data["extrap_steps"]
    if name in PAIG_TASKS:
        assert params.n_objects == data["n_objects"]


def test_half_pane_crossing_only_in_test_extrapolation():
    train_task, train, _ = sample("spring_color_half", "train")
    middle, radius = 16, train_task.params.radius
    assert (train.q[..., 0] <= middle - radius).all()
    _, test, _ = sample("spring_color_half", "test")
    confined = train_task.params.train_length
    assert (test.q[:, :confined, :, 0] <= middle - radius).all()
    assert (test.q[:, confined:, :, 0] > middle).flatten(1).any(1).all()


def test_bouncing_balls_touch_walls_and_stay_inside():
    task, trajectory, _ = sample("bouncing_balls", "test")
    q, r = trajectory.q, task.params.radius
    assert (q >= r - 1e-9).all() and (q <= 32 - r + 1e-9).all()
    assert ((q < r + 1) | (q > 31 - r)).any(), "some ball reaches a wall within 30 frames"


def test_file_name_templates_round_trip():
    template = NameTemplate("color_3bp_vx{speed_x}_vy{speed_y}_sl{length}_r{radius}_g{g}_m1_dt{dt}")
    values = {"speed_x": 2.0, "speed_y": 2.0, "length": 20, "radius": 2.0, "g": 60.0, "dt": 0.5}
    name = template.format(values)
    assert name == "color_3bp_vx2_vy2_sl20_r2_g60_m1_dt05.npz"
    assert template.parse(name) == values
    assert template.parse("color_3bp_vx2_vy2_sl20_r2_g60_m1_dt05.npy") is None
    assert pivf.task("spring_color_half").file_name("test") == "color_spring_vx4_vy4_sl30_r2_k4_e6_halfpane.npz"


# --- files -------------------------------------------------------------------------------------

def _generate(tmp_path, name="spring_color", seed=0, **params):
    return generate_dataset(name, tmp_path, n_train=8, n_valid=3, n_test=4, seed=seed, params=params or None)


def test_generated_files_use_the_original_layout_and_load(tmp_path):
    train_path, test_path = _generate(tmp_path)
    with np.load(train_path) as archive:  # readable without pivf, as the original files are
        assert {"test_x", "train_x", "valid_x"} <= set(archive.files)
        assert archive["train_x"].shape == (8, 12, 32, 32, 3) and archive["train_x"].dtype == np.uint8
    positions = read_beside(train_path, "train_x", "positions")  # where each ball is drawn, beside the frames
    assert positions.shape == (8, 12, 2, 2) and positions.dtype == np.float32
    frames = load_dataset(train_path).train.float()
    ball = positions[3, 5, 0]  # ball 0 is blue: the frame's blue channel peaks at its centre
    blue = frames[3, 5, :, :, 2]
    row, column = divmod(int(blue.argmax()), blue.shape[1])
    assert abs(column + 0.5 - ball[0]) <= 1 and abs(row + 0.5 - ball[1]) <= 1
    sidecar = json.loads(train_path.with_suffix(".json").read_text())
    assert sidecar["task"] == "spring_color" and sidecar["ground_truth"] == {"k": 4.0, "l": 6.0}
    assert sidecar["companion"] == test_path.name and sidecar["format_version"] == 1
    for path in (train_path, test_path, tmp_path):
        dataset = load_dataset(path)
        assert tuple(dataset.train.shape) == (8, 12, 32, 32, 3) and tuple(dataset.valid.shape) == (3, 12, 32, 32, 3)
        assert tuple(dataset.test.shape) == (4, 30, 32, 32, 3)
        assert dataset.info.source == "sidecar" and dataset.info.dt == 0.3 and dataset.info.seed == 0


def test_same_seed_same_bytes(tmp_path):
    first = _generate(tmp_path / "a", seed=3)
    second = _generate(tmp_path / "b", seed=3)
    other = _generate(tmp_path / "c", seed=4)
    for a, b, c in zip(first, second, other, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_original_files_without_sidecar_load_from_their_names(tmp_path):
    frames = lambda n, t: np.full((n, t, 36, 36, 3), 7, np.uint8)  # noqa: E731
    stem = "color_3bp_vx2_vy2_sl{}_r2_g60_m1_dt05.npz"
    np.savez_compressed(tmp_path / stem.format(20), train_x=frames(5, 20), valid_x=frames(2, 20), test_x=frames(2, 20))
    np.savez_compressed(tmp_path / stem.format(40), train_x=frames(10, 40), valid_x=frames(2, 40), test_x=frames(3, 40))
    for path in (tmp_path / stem.format(20), tmp_path / stem.format(40)):
        dataset = load_dataset(path)
        assert dataset.info.task == "3bp_color" and dataset.info.source == "file name"
        assert dataset.info.ground_truth["g"] == 60 and dataset.info.dt == 0.5
        assert len(dataset.train) == 5 and tuple(dataset.test.shape[:2]) == (3, 40)


def test_unnamed_file_loads_with_the_named_task_defaults(tmp_path):
    path = tmp_path / "mine.npz"
    video = np.full((2, 12, 32, 32, 3), 9, np.uint8)
    np.savez(path, train_x=video, valid_x=video, test_x=video)
    with pytest.raises(DataError, match="matches no task"):
        load_dataset(path)
    dataset = load_dataset(path, task="spring_color")
    assert dataset.info.source == "task defaults" and dataset.info.ground_truth == {"k": 4.0, "l": 6.0}


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_bad_files_fail_in_one_line(tmp_path):
    video = np.full((2, 12, 32, 32, 3), 9, np.uint8)
    missing = tmp_path / "missing.npz"
    np.savez(missing, train_x=video, test_x=video)
    wrong_dtype = tmp_path / "dtype.npz"
    np.savez(wrong_dtype, train_x=video.astype(np.float32), valid_x=video, test_x=video)
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, train_x=video[0], valid_x=video, test_x=video)
    truncated = tmp_path / "truncated.npz"
    np.savez_compressed(truncated, train_x=video, valid_x=video, test_x=video)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    expected = {missing: "missing key 'valid_x' (found: train_x, test_x)",
                wrong_dtype: "'train_x' has dtype float32, expected uint8",
                wrong_shape: "'train_x' has shape (12, 32, 32, 3), expected (N, T, H, W, C)",
                truncated: "truncated or corrupt .npz"}
    for path, text in expected.items():
        with pytest.raises(DataError) as excinfo:
            load_dataset(path, task="spring_color")
        assert text in _one_line(excinfo)


def test_damaged_file_with_sidecar_fails_its_checksum(tmp_path):
    train_path, _ = _generate(tmp_path)
    data = bytearray(train_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    train_path.write_bytes(bytes(data))
    with pytest.raises(DataError) as excinfo:
        load_dataset(train_path)
    assert "sha256 differs" in _one_line(excinfo)


def test_writer_leaves_no_file_when_generation_fails(tmp_path):
    with pytest.raises(DataError):  # a rest length that cannot fit the frame
        _generate(tmp_path, ground_truth={"l": 20.0})
    assert list(tmp_path.iterdir()) == []


def test_ensure_dataset_generates_once_and_caches(tmp_path):
    path = ensure_dataset("bouncing_balls", 5, 2, 2, seed=1, cache_dir=tmp_path)
    stamp = path.stat().st_mtime_ns
    assert ensure_dataset("bouncing_balls", 5, 2, 2, seed=1, cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
    assert ensure_dataset("bouncing_balls", 5, 2, 2, seed=2, cache_dir=tmp_path) != path
    assert len(load_dataset(path).train) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left behind"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None


# --- command line ------------------------------------------------------------------------------

def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    return app


def test_cli_tasks_generate_info(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(_cli(), ["data", "tasks"])
    assert listed.exit_code == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    third_party = {r["name"] for r in pivf.list_plugins("task") if r["distribution"] != "pivf"}
    assert sorted(set(names) - third_party) == sorted(PAIG_TASKS + HGN_TASKS + MUJOCO_TASKS + DM_CONTROL_TASKS)
    made = runner.invoke(_cli(), ["data", "generate", "pendulum", "--out", str(tmp_path), "--n-train", "4",
                                  "--n-valid", "2", "--n-test", "2", "--set", "noise_std=0"])
    assert made.exit_code == 0, made.output
    info = runner.invoke(_cli(), ["data", "info", str(tmp_path)])
    assert info.exit_code == 0, info.output
    assert "train         (4, 34, 32, 32, 3) uint8" in info.stdout and "test          (2, 64, 32, 32, 3)" in info.stdout
    preview = next(line.split(None, 1)[1] for line in info.stdout.splitlines() if line.startswith("preview"))
    assert Image.open(preview).size[0] > 32 * 10


def test_cli_data_errors_exit_2_in_one_line(tmp_path):
    from pivf.cli.main import app

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = CliRunner().invoke(app, ["data", "info", str(bad), "--task", "spring_color"])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "truncated or corrupt" in result.stderr


@pytest.mark.parametrize("name", ["spring_color", "3bp_color"])  # balls that never overlap
def test_one_colour_draws_every_ball_white_where_it_was_drawn_in_one_channel(name):
    task, trajectory, frames = sample(name, "train")
    white = pivf.task(name, one_colour=True).render(trajectory)
    drawn = frames.amax(-1)  # each ball lights one channel of its own
    assert torch.equal(white[..., 0], drawn) and torch.equal(white[..., 1], drawn) and torch.equal(white[..., 2], drawn)
    assert (frames.float().std(-1) > 0).any()  # the coloured frames do tell the balls apart
