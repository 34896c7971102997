"""The product works: PAIG, trained from pixels alone with the default recipe, finds both objects and
recovers the spring's parameters within a budget of steps. A change that breaks learning fails here.

The budget is in steps, not seconds, so a slow CPU is asked what a fast one is: on seed 0 both balls
are found after about 300 steps and k and l come within 5 % a few hundred steps later."""
from __future__ import annotations

import pytest

from pivf.core.kernel.config import resolve_config
from pivf.core.training.train import Trainer

STEPS = 700


@pytest.mark.slow(seconds=170)
def test_spring_color_is_learned_from_pixels_within_a_step_budget(tmp_path, calibrated_threads):
    config = resolve_config(task="spring_color", flags={
        "training.device": "cpu", "data.cache_dir": str(tmp_path / "cache"),
        "logging.out": str(tmp_path), "logging.tensorboard": False}, overrides=[f"training.steps={STEPS}"])
    metrics = Trainer(config, log=lambda _msg: None, quiet=True).fit()
    evaluation, params, verdict = metrics["eval"], metrics["params"], metrics["verdict"]
    assert metrics["train"]["steps"] == STEPS and metrics["train"]["stopped"] == "steps"
    assert evaluation["recons_loss"] < 1.5, metrics  # both balls found
    assert params["k"]["rel_error"] < 0.10 and params["l"]["rel_error"] < 0.10, params  # and their spring
    assert verdict["objects_found"] is True and verdict["prediction_from"] is not None, verdict
