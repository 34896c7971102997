"""The Hamiltonian variant learns: HGN's ``fast`` recipe, trained from pixels alone on the mass-spring
video (without observation noise, see docs/RESULTS.md), predicts frames past its training window
forwards and backwards in time within a budget of steps. A change that breaks learning fails here.

The budget is in steps, not seconds: the model leaves its still-picture plateau after about 600
steps, which a fast CPU gives in 150 s and a slow one (AVX2 only, 0.55 s per step) in 330 s."""
from __future__ import annotations

import pytest

from pivf.core.kernel.config import resolve_config
from pivf.core.training.train import Trainer

EPOCHS = 30  # 32 steps each over 500 sequences in batches of 16: 960 steps
WINDOW = 15  # the fast recipe's 5 input and 10 predicted frames


@pytest.mark.slow(seconds=420)
def test_mass_spring_motion_is_learned_and_extrapolated_both_ways(tmp_path, calibrated_threads):
    config = resolve_config(task="mass_spring", flags={
        "training.recipe": "fast", "training.epochs": EPOCHS, "training.device": "cpu",
        "data.cache_dir": str(tmp_path / "cache"), "logging.out": str(tmp_path), "logging.tensorboard": False,
    }, overrides=["data.task_params.noise_std=0", "data.n_train=500", "data.n_valid=20", "data.n_test=20"])
    metrics = Trainer(config, log=lambda _msg: None, quiet=True).fit()
    evaluation = metrics["eval"]
    assert evaluation["mse"] < 10.0, evaluation  # ×1e4 over the window; a still picture of the ball scores ~70
    assert evaluation["vpt"] >= WINDOW and evaluation["vpt_backward"] >= WINDOW, evaluation
