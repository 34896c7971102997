"""The product works: PAIG, trained from pixels alone with the default recipe, finds both objects and
recovers the spring's parameters within a CPU budget of minutes. A change that breaks learning fails here."""
from __future__ import annotations

import pytest

from pivf.core.config import resolve_config
from pivf.core.train import Trainer

BUDGET_S = 240


@pytest.mark.slow
def test_spring_color_is_learned_from_pixels_within_four_minutes(tmp_path, calibrated_threads):
    config = resolve_config(task="spring_color", flags={
        "training.max_time": BUDGET_S, "training.device": "cpu", "data.cache_dir": str(tmp_path / "cache"),
        "logging.out": str(tmp_path), "logging.tensorboard": False})
    metrics = Trainer(config, log=lambda _msg: None, quiet=True).fit()
    evaluation, params = metrics["eval"], metrics["params"]
    assert metrics["train"]["wall_s"] <= BUDGET_S + 30
    assert evaluation["recons_loss"] < 1.5, metrics  # both balls found
    assert params["k"]["rel_error"] < 0.10 and params["l"]["rel_error"] < 0.10, params  # and their spring
