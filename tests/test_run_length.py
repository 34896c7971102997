"""A run's length in steps, whatever the dataset's size, and the verdict every run ends with."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pivf.core.data.generate import generate_dataset
from pivf.core.kernel.config import resolve_config
from pivf.core.training.train import Trainer, resume
from pivf.core.training.verdict import MOVING, moving_parameters, verdict

SMALL = ["encoder.unet_base=4", "encoder.loc_hidden=32", "encoder.vel_hidden=16", "logging.tensorboard=false",
         "training.batch_size=10", "training.device=cpu"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """25 training sequences: two steps of 10 per epoch, the remainder dropped."""
    train, _ = generate_dataset("spring_color", tmp_path_factory.mktemp("data"), 25, 10, 10, seed=0)
    return train


def test_the_default_recipe_is_sized_in_steps_and_a_flag_in_epochs_replaces_it():
    assert resolve_config(task="spring_color").training.steps == 1860
    by_flag = resolve_config(task="spring_color", flags={"training.epochs": 5}).training
    assert (by_flag.steps, by_flag.epochs) == (None, 5)
    by_set = resolve_config(task="spring_color", overrides=["training.steps=40"]).training
    assert by_set.steps == 40
    both = resolve_config(task="spring_color", flags={"training.epochs": 5}, overrides=["training.steps=40"]).training
    assert (both.steps, both.epochs) == (40, 5)  # --set is above the flags


def test_a_run_sized_in_steps_trains_exactly_that_many_over_a_small_set(data_file, tmp_path):
    torch.set_num_threads(1)
    config = resolve_config(task="spring_color", overrides=SMALL + [
        f"data.path={data_file}", f"logging.out={tmp_path}", "logging.run_name=run", "training.steps=5"])
    metrics = Trainer(config, log=lambda _msg: None).fit()
    train = metrics["train"]
    assert (train["steps"], train["stopped"], train["epochs_done"]) == (5, "steps", 2)  # 2 + 2 + 1 of the third
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["verdict"] == metrics["verdict"] and written["verdict"]["line"].startswith("stopped at step 5")
    assert "--set training.steps=10" in written["verdict"]["line"]
    extended = resume(tmp_path / "run", log=lambda _msg: None, steps=8)
    assert (extended["train"]["steps"], extended["train"]["stopped"]) == (8, "steps")
    by_epochs = resume(tmp_path / "run", log=lambda _msg: None, epochs=5)
    assert (by_epochs["train"]["steps"], by_epochs["train"]["stopped"]) == (10, "epochs")


def history(*values: float, step: int = 100) -> list[dict]:
    return [{"step": step * (i + 1), "params": {"k": {"learned": v}}} for i, v in enumerate(values)]


def test_a_parameter_is_moving_when_it_changed_over_the_last_quarter_of_the_steps():
    # validations at steps 100..800; the last quarter starts after step 600, whose value is the reference
    assert moving_parameters(history(1, 2, 3, 3.9, 4.0, 4.0, 4.02, 4.05)) == {}  # 4.05 / 4.0: 1.25 %
    assert moving_parameters(history(1, 2, 3, 3.5, 3.7, 3.8, 3.9, 4.0)) == {"k": round(0.2 / 3.8, 4)}
    assert moving_parameters(history(1)) == {}
    assert MOVING == 0.02


@pytest.mark.parametrize("milestones, values, stopped, expected", [
    ({"objects_found": False, "prediction_from": None}, (1, 1), "max_time",
     "stopped at step 800 after 4m before every object was found: run longer with --max-time 8m"),
    ({"objects_found": True, "prediction_from": None}, (1, 1), "steps",
     "before prediction started (objects found, still warming up): run longer with --set training.steps=1600"),
    ({"objects_found": True, "prediction_from": 300}, (1, 2, 3, 3.5, 3.7, 3.8, 3.9, 4.0), "epochs",
     "with parameters still moving (k by 5.3 % over the last 25 % of the steps): run longer with --epochs 60"),
    ({"objects_found": True, "prediction_from": 300}, (1, 2, 3, 3.9, 4.0, 4.0, 4.02, 4.05), "steps",
     "stopped at step 800 after 4m: objects found, prediction from step 300, parameters settled"),
    ({}, (), "epochs", "stopped at step 800 after 4m: no learned physical parameters"),
])
def test_the_verdict_names_what_was_learned_and_what_to_do(milestones, values, stopped, expected):
    train = {"stopped": stopped, "steps": 800, "epochs": 30, "wall_s": 240.0, "max_time_s": 240.0}
    points = history(*values) if values else [{"step": 800, "params": {}}]
    assert expected in verdict(milestones, points, train)["line"]
