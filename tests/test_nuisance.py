"""The camera layer: each nuisance does what its number says, measured on the frames it makes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.data.dataset import sidecar_path
from pivf.core.data.generate import chunk_generator, ensure_dataset, generate_dataset, make_task
from pivf.core.data.npz import read_beside, sha256_file
from pivf.core.data.nuisance import NUISANCES, PROFILES, Camera
from pivf.core.kernel.build import generated_task_params
from pivf.core.kernel.config import resolve_config
from pivf.plugins.tasks.mujoco import mujoco_problem

needs_mujoco = pytest.mark.skipif(mujoco_problem() is not None, reason=f"MuJoCo: {mujoco_problem()}")

#: a ball resting at the image centre on HGN's flat grey-blue background
RESTING = {"energy_range": (0.0, 0.0), "noise_std": 0.0}


def film(name: str, nuisance: dict | str, n: int = 4, length: int = 12, seed: int = 0, **params):
    """(task, trajectory, clean uint8 frames, filmed uint8 frames, beside) of n fresh sequences."""
    task = make_task(name, {**params, "nuisance": nuisance})
    generator = chunk_generator(seed, 0, 0)
    trajectory = task.simulate(n, length, generator)
    frames, beside = Camera(task.params.nuisance).film(task, trajectory, generator)
    return task, trajectory, task.render(trajectory).numpy(), frames, beside


def flat_region_change(nuisance: dict) -> tuple[np.ndarray, np.ndarray]:
    """(filmed − clean) over columns 0-7 of mass_spring (always background) and the background colour."""
    _, _, clean, frames, _ = film("mass_spring", nuisance, n=8, length=34)
    return frames[..., :8, :].astype(float) - clean[..., :8, :], clean[0, 0, 0, 0].astype(float)


@pytest.mark.parametrize("severity, std", [("low", 2.0), ("high", 8.0)])
def test_read_noise_has_the_set_std_on_a_flat_region(severity, std):
    change, _ = flat_region_change({"noise": severity})
    assert abs(change.std() - std) < 0.1 * std and abs(change.mean()) < 0.05


def test_shot_noise_grows_with_the_square_root_of_the_intensity():
    change, background = flat_region_change({"shot": 16.0})
    expected = 16.0 * np.sqrt(background / 255)  # (81, 88, 93) → about 9.0, 9.4, 9.7
    measured = change.reshape(-1, 3).std(0)
    assert np.all(np.abs(measured - expected) < 0.1 * expected)


def test_brightness_drift_moves_the_mean_intensity_by_the_set_amplitude():
    change, _ = flat_region_change({"brightness": 32.0})
    per_frame = change.mean(axis=(2, 3, 4))  # (N, T)
    reached = np.abs(per_frame).max(1)
    assert np.all(reached > 0.95 * 32) and np.all(reached < 32 + 0.6)
    steepest = 32 * 2 * np.pi / 33 + 0.6  # slow: at most one period per sequence
    assert np.all(np.abs(np.diff(per_frame, axis=1)).max(1) < steepest)


def test_contrast_drift_scales_the_distance_from_mid_grey_by_the_set_fraction():
    change, background = flat_region_change({"contrast": 0.3})
    gain = change.mean(axis=(2, 3)) / (background - 127.5)  # (N, T, C): the same in every channel
    reached = np.abs(gain).max(1)
    assert np.all(reached > 0.95 * 0.3) and np.all(reached < 0.3 + 0.02)


def centroids(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(N, T, 2) intensity centroids (x, y) of what differs from the background."""
    weight = np.abs(frames.astype(float) - background).sum(-1)
    rows, cols = np.indices(weight.shape[-2:]) + 0.5
    total = weight.sum((-2, -1))
    return np.stack(((weight * cols).sum((-2, -1)) / total, (weight * rows).sum((-2, -1)) / total), -1)


def test_jitter_moves_each_frame_by_the_stored_shake_whose_std_is_the_set_one():
    _, _, clean, frames, beside = film("mass_spring", {"jitter": 2.0}, n=8, length=34, image_size=64, radius=6.0,
                                       **RESTING)
    background = clean[0, 0, 0, 0]
    moved = centroids(frames, background) - centroids(clean, background)
    assert np.abs(moved - beside["shake"]).max() < 0.05  # subpixel, and where the record says
    assert abs(beside["shake"].std() - 2.0) < 0.1 * 2.0 and beside["shake"].shape == (8, 34, 2)


def test_motion_blur_is_the_mean_of_the_renders_over_the_open_shutter():
    task, trajectory, _, frames, _ = film("bouncing_balls", {"blur": 0.5})
    offsets = Camera(task.params.nuisance).offsets()
    assert offsets == [(k + 0.5) / 8 * 0.5 for k in range(8)]
    renders = torch.stack([task.render(state) for state in task.advance(trajectory, offsets)]).double()
    assert np.array_equal(frames, renders.mean(0).round().to(torch.uint8).numpy())


@pytest.mark.parametrize("shutter", [0.5, 1.0])
def test_a_moving_ball_is_smeared_over_its_speed_times_the_shutter_time(shutter):
    params = {"n_objects": 1, "image_size": 64, "radius": 3.0, "speed_x": 30.0, "speed_y": 0.0}
    task, trajectory, clean, frames, _ = film("bouncing_balls", {"blur": shutter}, n=8, **params)
    x, speed = trajectory.positions[..., 0, 0].numpy(), trajectory.p[..., 0, 0].numpy()
    dt = task.params.dt
    free = np.abs(np.diff(x, axis=1) - speed[:, :-1] * dt) < 1e-6  # no bounce while the shutter is open
    away = (x[:, :-1] > 3 + 10) & (x[:, :-1] < 64 - 3 - 10)
    chosen = free & away & (np.abs(speed[:, :-1]) * shutter * dt >= 2)  # streaks longer than rounding blurs
    assert chosen.sum() >= 20
    samples = len(Camera(task.params.nuisance).offsets())

    def variance(video: np.ndarray) -> np.ndarray:
        weight = video[:, :-1, ..., 2].astype(float)
        cols = np.arange(64) + 0.5
        mean = (weight * cols).sum((-2, -1)) / weight.sum((-2, -1))
        return (weight * (cols - mean[..., None, None]) ** 2).sum((-2, -1)) / weight.sum((-2, -1))

    # samples equally spaced over the streak's length L spread by L²(S² − 1)/(12 S²) more than one ball
    spread = variance(frames)[chosen] - variance(clean)[chosen]
    measured = np.sqrt(12 * spread * samples**2 / (samples**2 - 1))
    expected = np.abs(speed[:, :-1][chosen]) * shutter * dt
    error = np.abs(measured - expected) / expected
    assert error.max() < 0.05 and error.mean() < 0.02  # what is left is the rounding to whole levels


def test_the_occluder_hides_a_resting_ball_in_some_frames_of_every_sequence():
    _, trajectory, clean, frames, _ = film("bouncing_balls", {"occluder": "high"}, n=6, length=30, n_objects=1,
                                           radius=3.0, speed_x=0.0, speed_y=0.0)
    centre = trajectory.positions[:, 0, 0].long().numpy()
    rows = np.arange(6)
    seen = frames[rows, :, centre[:, 1], centre[:, 0], 2].astype(float)  # the blue ball's own channel, (N, T)
    assert np.all(clean[rows, :, centre[:, 1], centre[:, 0], 2] > 200)
    hidden = (seen < 0.5 * 255).sum(1)
    assert np.all(hidden >= 1) and np.all(hidden <= 30 // 3)


def test_clutter_fills_the_black_background_and_leaves_the_balls_as_they_are():
    _, _, clean, frames, _ = film("spring_color", {"clutter": "high"})
    black = (clean == 0).all(-1)
    lit = (frames[black] > 0).any(-1).mean()
    assert lit > 0.99
    solid = (clean == 255).any(-1)  # pixels wholly inside a ball
    assert solid.sum() > 100 and np.array_equal(frames[solid], clean[solid])
    assert np.abs(frames.astype(float) - np.roll(frames, 1, axis=1)).mean() > 1  # distractors move


def test_clutter_is_filmed_in_one_room_behind_every_sequence():
    """The backdrop is the camera's room, drawn from the dataset's seed: where neither sequence shows
    a ball or a distractor (no distractors here) two sequences agree; another seed is another room."""
    _, _, clean, frames, _ = film("spring_color", {"clutter": 0.0})
    empty = (clean[0, 0] == 0).all(-1) & (clean[1, 0] == 0).all(-1)
    assert empty.mean() > 0.9 and np.array_equal(frames[0, 0][empty], frames[1, 0][empty])
    task = make_task("spring_color", {"nuisance": {"clutter": 0.0}})
    rooms = [Camera(task.params.nuisance, seed).room(32, 3) for seed in (0, 0, 1)]
    assert torch.equal(rooms[0], rooms[1]) and (rooms[0] - rooms[2]).abs().mean() > 1


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / ((a.astype(float) - b) ** 2).mean()))


def test_compression_loses_more_as_the_rate_factor_rises():
    reference = film("spring_color", {"clutter": 1.0})[3]
    quality = {crf: psnr(film("spring_color", {"clutter": 1.0, "compression": crf})[3], reference)
               for crf in (20, 28, 40)}
    assert quality[20] > quality[28] + 2 > quality[40] + 4 and quality[20] < 60  # every one loses something


def test_profiles_and_severities_resolve_to_the_documented_numbers():
    phone = make_task("spring_color", {"nuisance": "phone"}).params.nuisance
    assert phone == {name: low for name, (_, (low, _), _) in NUISANCES.items()} and list(phone) == list(NUISANCES)
    assert phone == {"noise": 2.0, "shot": 4.0, "blur": 0.25, "jitter": 0.5, "brightness": 8.0, "contrast": 0.1,
                     "clutter": 1.0, "occluder": 0.1, "compression": 28.0}
    mixed = make_task("spring_color", {"nuisance": {"compression": "high", "noise": 3}}).params.nuisance
    assert mixed == {"noise": 3.0, "compression": 40.0}
    assert make_task("spring_color", {"nuisance": "none"}).params.nuisance == {} == PROFILES["none"]


def generate(tmp_path, name: str, **params):
    return generate_dataset("spring_color", tmp_path / name, 3, 1, 1, seed=5, params=params)


def test_phone_applies_every_nuisance_and_a_seed_gives_the_same_bytes(tmp_path):
    clean_train, _ = generate(tmp_path, "clean")
    train, test = generate(tmp_path, "a", nuisance="phone")
    again, _ = generate(tmp_path, "b", nuisance="phone")
    assert train.name == "color_spring_vx8_vy8_sl12_r2_k4_e6_phone.npz"
    assert test.name == "color_spring_vx8_vy8_sl30_r2_k4_e6_phone.npz"
    assert sha256_file(train) == sha256_file(again)
    sidecar = json.loads(sidecar_path(train).read_text())
    assert sidecar["params"]["nuisance"] == PROFILES["phone"]
    # the same motion as the clean data of the seed, filmed otherwise: every frame differs
    assert np.array_equal(read_beside(train, "train_x", "positions"), read_beside(clean_train, "train_x", "positions"))
    with np.load(train) as filmed, np.load(clean_train) as clean:
        assert (filmed["train_x"] != clean["train_x"]).reshape(3 * 12, -1).any(1).all()
        assert filmed["train_shake"].shape == (3, 12, 2) and np.abs(filmed["train_shake"]).max() > 0


def test_no_nuisance_changes_nothing_in_bytes_records_or_cache_keys(tmp_path):
    train, _ = generate(tmp_path, "default")
    same, _ = generate(tmp_path, "none", nuisance="none")
    assert same.name == train.name and sha256_file(same) == sha256_file(train)
    assert sidecar_path(same).read_text() == sidecar_path(train).read_text()
    assert "nuisance" not in json.loads(sidecar_path(train).read_text())["params"]
    cached = [ensure_dataset("spring_color", 2, 1, 1, 0, tmp_path / "cache", params) for params in
              (None, {"nuisance": "none"}, {"nuisance": {"noise": "low"}})]
    assert cached[0] == cached[1] and cached[2].parent != cached[0].parent
    assert cached[2].name == "color_spring_vx8_vy8_sl12_r2_k4_e6_noise2.npz"


def test_data_nuisance_reaches_the_generated_task_params():
    assert "nuisance" not in generated_task_params(resolve_config(task="spring_color"))
    config = resolve_config(task="spring_color", overrides=["data.nuisance={blur: high}"])
    assert generated_task_params(config)["nuisance"] == {"blur": 1.0}


@pytest.mark.parametrize("value, message", [
    ("{fog: high}", "nuisance: unknown nuisance 'fog'; one of noise, shot, blur, jitter, brightness, contrast, "
                    "clutter, occluder, compression"),
    ("{noise: medium}", "nuisance: noise: 'medium' is not a severity; low (2), high (8) or a number in [0, 64]"),
    ("{compression: 28.5}", "compression: 28.5 is out of range; low (28), high (40) or a number in [0, 51]"),
    ("camera", "unknown profile 'camera'; one of none, phone"),
])
def test_an_unknown_nuisance_or_severity_is_one_line_and_exit_2(tmp_path, value, message):
    result = CliRunner().invoke(app, ["data", "generate", "spring_color", "--out", str(tmp_path / "out"), "--n-train",
                                      "1", "--n-valid", "1", "--n-test", "1", "--set", f"nuisance={value}"])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


@needs_mujoco
def test_a_mujoco_scene_blurs_from_its_own_engine_and_keeps_its_objects_over_the_clutter():
    task, trajectory, clean, frames, _ = film("mujoco_pendulum", {"blur": 1.0}, n=1, length=3, image_size=16)
    states = task.advance(trajectory, Camera(task.params.nuisance).offsets())
    mean = torch.stack([task.render(state) for state in states]).double().mean(0).round().to(torch.uint8)
    assert np.array_equal(frames, mean.numpy()) and not np.array_equal(frames, clean)
    rendered, weight = task.render_with_backdrop(trajectory)
    assert np.array_equal(rendered.numpy(), clean)
    bob = trajectory.positions[0, :, 0].long()
    assert weight[0, torch.arange(3), bob[:, 1], bob[:, 0]].max() == 0 and weight[0, :, 15, 0].min() == 1
