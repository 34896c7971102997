"""The objective is a plugin kind: a third-party objective trains through ``--objective``, objective
params are validated by their own model, incompatible choices are one line, and run directories
written before objectives were plugins still evaluate and resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.data.generate import generate_dataset
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.errors import ConfigError, PluginParamsError
from pivf.core.training.evaluate import evaluate_run
from pivf.core.training.train import Trainer, resume

SMALL = ["encoder.unet_base=4", "encoder.loc_hidden=32", "encoder.vel_hidden=16", "training.eval_every=1",
         "logging.tensorboard=false", "logging.checkpoint_every=1"]

PRED_ONLY = '''
    from pydantic import Field

    import pivf
    from pivf.core.kernel.losses import frame_sse
    from pivf.core.kernel.objective import Objective, ObjectiveParams


    class PredOnlyParams(ObjectiveParams):
        scale: float = Field(1.0, gt=0, description="weight of the prediction error")


    class PredOnly(Objective):
        """Scores only the predicted frames: no reconstruction term."""

        name = "pred_only"
        description = "squared error of the predicted frames alone"
        Params = PredOnlyParams
        headline = ("pred",)

        def losses(self, pipeline, frames):
            out = pipeline(frames[:, : self.train_length], steps=self.pred_steps)
            pred = frame_sse(out.frames[:, 1:], frames[:, self.input_steps:self.train_length])
            return {"pred": pred, "loss": self.params.scale * pred}


    @pivf.hookimpl
    def pivf_objectives():
        return [PredOnly]
'''


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    train, _ = generate_dataset("spring_color", tmp_path_factory.mktemp("data"), 20, 10, 10, seed=0)
    return train


def tiny_flags(data_file: Path, out: Path) -> list[str]:
    sets = [arg for setting in SMALL for arg in ("--set", setting)]
    return ["--task", "spring_color", "--data", str(data_file), "--device", "cpu", "--batch-size", "10",
            "--epochs", "1", "--out", str(out), *sets]


def test_a_third_party_objective_trains_through_the_cli(install_distribution, data_file, tmp_path):
    install_distribution("pivf-pred-only", {"pred_only_objective": PRED_ONLY}, {"pred_only": "pred_only_objective"})
    listed = CliRunner().invoke(app, ["plugins", "--kind", "objective", "--json"])
    assert {row["name"]: row["status"] for row in json.loads(listed.stdout)} == \
        {"paig": "ok", "hgn": "ok", "positions": "ok", "pred_only": "ok"}
    result = CliRunner().invoke(app, ["train", *tiny_flags(data_file, tmp_path), "--objective", "pred_only",
                                      "--set", "objective.scale=2", "--set", "logging.run_name=mine"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "mine" / "metrics.json").read_text())
    assert set(metrics["eval"]) == {"split", "pred"} and metrics["eval"]["pred"] > 0
    saved = yaml.safe_load((tmp_path / "mine" / "config.yaml").read_text())
    assert saved["objective"] == {"name": "pred_only", "input_steps": 4, "pred_steps": 6, "scale": 2.0}
    assert saved["training"]["recipe"] is None  # the PAIG recipes belong to the PAIG objective


def test_objective_params_are_validated_by_the_objective():
    config = resolve_config(overrides=["objective.recons_weight=5"])
    assert config.objective.params["recons_weight"] == 5.0
    with pytest.raises(PluginParamsError, match="objective 'paig': recons_wieght: unknown field .*recons_weight"):
        resolve_config(overrides=["objective.recons_wieght=5"])
    with pytest.raises(ConfigError, match="objective.pred_steps = 3 conflicts with data.pred_steps = 6"):
        resolve_config(overrides=["objective.pred_steps=3"])


def test_an_objective_refuses_physics_of_a_state_it_cannot_train():
    with pytest.raises(ConfigError, match="objective 'hgn' works on latent states but physics 'spring' has "
                                          "objects states; use objective paig"):
        resolve_config(flags={"objective.name": "hgn", "physics.name": "spring", "encoder.name": "paig_unet",
                              "decoder.name": "spatial_transformer"})


def legacy_config(config: dict) -> dict:
    """A config.yaml as runs wrote it before objectives were plugins."""
    objective = config.pop("objective")
    config["training"].update(objective=objective["name"], recons_weight=objective["recons_weight"],
                              warmup_steps=objective["warmup_steps"], horizon_steps=objective["horizon_steps"],
                              discovery_share=objective["discovery_share"], latent_weight=objective["latent_weight"])
    config["hgn"] = {"mode": "predict", "variational": True, "kl_weight": 0.01, "geco": False,
                     "geco_tolerance": 0.033, "geco_alpha": 0.99, "geco_rate": 0.1}
    return config


@pytest.fixture
def one_thread():
    """A tiny model: more threads only add synchronisation; the setting is put back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_run_written_before_objectives_were_plugins_still_evaluates_and_resumes(data_file, tmp_path, one_thread):
    config = resolve_config(task="spring_color", overrides=SMALL + [
        f"data.path={data_file}", "training.device=cpu", "training.batch_size=10", f"logging.out={tmp_path}",
        "training.epochs=1", "logging.run_name=old", "objective.recons_weight=2.5"])
    Trainer(config, log=lambda _msg: None).fit()
    run = tmp_path / "old"
    before = evaluate_run(run, device="cpu", log=lambda _msg: None)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(legacy_config(saved), sort_keys=False))
    after = evaluate_run(run, device="cpu", log=lambda _msg: None)
    assert after["eval"] == before["eval"] and after["params"] == before["params"]
    metrics = resume(run, log=lambda _msg: None, epochs=2)
    assert metrics["train"]["epochs_done"] == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["objective"]["recons_weight"] == 2.5
