"""The Hamiltonian variant on keypoints learns the pendulum: the ``keypoints`` recipe (PAIG's encoder
and decoder, a learned energy over the bob's position, the rod found in the data), trained from
pixels alone on HGN's pendulum without observation noise, predicts the test sequences far past its
training window forwards and backwards in time within a budget of steps, the sequences that go
over the top included. A change that breaks learning fails here.

The budget is in steps, not seconds; the pendulum's motion is learned about 150 steps after the
300 steps of warm-up."""
from __future__ import annotations

import pytest

from pivf.core.kernel.config import resolve_config
from pivf.core.training.train import Trainer

STEPS = 650
BATCH = 8  # half the recipe's 16: half the test's cost
TRUE_ROD_PX = 8.0  # l = 1 on a canvas of ±2 world units drawn on 32 px


@pytest.mark.slow(seconds=300)
def test_the_pendulum_is_learned_on_keypoints_and_predicted_both_ways(tmp_path, calibrated_threads):
    config = resolve_config(task="pendulum", flags={
        "objective.name": "paig", "training.recipe": "keypoints", "training.steps": STEPS, "training.batch_size": BATCH,
        "training.device": "cpu", "training.eval_every": 100, "data.cache_dir": str(tmp_path / "cache"),
        "logging.out": str(tmp_path), "logging.tensorboard": False,
    }, overrides=["data.task_params.noise_std=0", "data.n_train=300", "data.n_valid=20", "data.n_test=30"])
    metrics = Trainer(config, log=lambda _msg: None, quiet=True).fit()
    evaluation = metrics["eval"]
    # of 59 test frames; a still picture scores 0, the latent HGN recipe 8.5 and 12 after 25 minutes
    assert evaluation["vpt"] >= 20 and evaluation["vpt_backward"] >= 20, evaluation
    assert abs(metrics["params"]["rod_pivot_0"]["learned"] / TRUE_ROD_PX - 1) < 0.05, metrics["params"]
