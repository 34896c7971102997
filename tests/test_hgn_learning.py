"""The Hamiltonian variant learns: HGN's ``fast`` recipe, trained from pixels alone on the mass-spring
video (without observation noise, see docs/RESULTS.md), predicts frames past its training window
forwards and backwards in time within a CPU budget. A change that breaks learning fails here."""
from __future__ import annotations

import pytest

from pivf.core.config import resolve_config
from pivf.core.train import Trainer

BUDGET_S = 150
WINDOW = 15  # the fast recipe's 5 input and 10 predicted frames


@pytest.mark.slow
def test_mass_spring_motion_is_learned_and_extrapolated_both_ways(tmp_path, calibrated_threads):
    config = resolve_config(task="mass_spring", flags={
        "training.recipe": "fast", "training.max_time": BUDGET_S, "training.device": "cpu",
        "data.cache_dir": str(tmp_path / "cache"), "logging.out": str(tmp_path), "logging.tensorboard": False,
    }, overrides=["data.task_params.noise_std=0", "data.n_train=500", "data.n_valid=20", "data.n_test=20"])
    metrics = Trainer(config, log=lambda _msg: None, quiet=True).fit()
    evaluation = metrics["eval"]
    assert metrics["train"]["wall_s"] <= BUDGET_S + 30
    assert evaluation["mse"] < 10.0, evaluation  # ×1e4 over the window; a still picture of the ball scores ~70
    assert evaluation["vpt"] >= WINDOW and evaluation["vpt_backward"] >= WINDOW, evaluation
