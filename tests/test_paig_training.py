"""PAIG end to end on CPU: parameter recovery through pixels, a tiny run that learns, artefacts."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

import pivf
from pivf.cli.main import app
from pivf.core.data.frames import as_float
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.losses import frame_sse
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.training.evaluate import evaluate_run
from pivf.core.training.train import Trainer


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster and steadier on a busy CI machine
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow(seconds=35)
def test_ground_truth_positions_through_the_decoder_recover_the_spring(one_thread):
    """Encoder bypassed: true positions and velocities at the last input frame start the rollout; the
    spring's k and l and the decoder's templates are learned from the pixel prediction loss alone."""
    torch.manual_seed(0)
    task = pivf.task("spring_color")
    trajectory = task.simulate(64, 10, torch.Generator().manual_seed(0))
    frames = as_float(task.render(trajectory))
    positions, velocities = trajectory.positions.float(), trajectory.p.float()
    physics = pivf.physics("spring")
    decoder = pivf.decoder("spatial_transformer")
    pipeline = Pipeline(pivf.encoder("paig_unet"), physics, pivf.integrator("euler", substeps=10), decoder, dt=0.3)
    optimizer = torch.optim.Adam([{"params": decoder.parameters(), "lr": 3e-3},
                                  {"params": physics.parameters(), "lr": 3e-2}])
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [300], gamma=0.2)
    generator = torch.Generator().manual_seed(1)
    start, steps = 3, 6
    for _ in range(400):
        batch = torch.randint(0, 64, (16,), generator=generator)
        q, _ = pipeline.rollout(positions[batch, start], velocities[batch, start], steps)
        loss = frame_sse(pipeline.decode(q), frames[batch, start:start + steps + 1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    learned = physics.learned_parameters()
    assert learned["k"] == pytest.approx(4.0, rel=0.02)
    assert learned["l"] == pytest.approx(6.0, rel=0.02)
    assert loss.item() < 1.0  # per-frame squared error: the balls are drawn where they are


@pytest.mark.slow(seconds=10)
def test_tiny_run_learns_and_writes_a_complete_run_directory(tmp_path, one_thread):
    config = resolve_config(task="spring_color", overrides=[
        "data.n_train=40", "data.n_valid=10", "data.n_test=10", f"data.cache_dir={tmp_path / 'cache'}",
        "training.epochs=6", "training.batch_size=10", "training.optimizer=adam", "training.lr=3e-3",
        "training.device=cpu", "training.eval_every=2", "encoder.unet_base=4", "encoder.loc_hidden=32",
        "logging.log_every=2", f"logging.out={tmp_path}", "logging.run_name=tiny"])
    metrics = Trainer(config, log=lambda _msg: None).fit()
    run_dir = tmp_path / "tiny"
    events = EventAccumulator(str(run_dir))
    events.Reload()
    losses = [s.value for s in events.Scalars("train/loss")]
    assert losses[-1] < losses[0] / 4, losses  # the background and ball templates are found quickly
    assert {"param/k", "param/l", "valid/pred", "valid/recons", "perf/samples_per_s"} <= set(events.Tags()["scalars"])
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    assert set(written["eval"]) == {"split", "pred_loss", "extrap_loss", "recons_loss", "vpt", "vpt_backward",
                                    "vpt_still"}
    assert written["params"]["k"]["true"] == 4.0 and written["params"]["l"]["true"] == 6.0
    assert {"rollouts", "energy"} <= set(events.Tags()["images"])
    for name in ("config.yaml", "rollouts.png", "energy.png", "templates.png", "checkpoints/best.pt",
                 "checkpoints/last.pt"):
        assert (run_dir / name).stat().st_size > 0, name
    evaluated = evaluate_run(run_dir, checkpoint="last", device="cpu", log=lambda _msg: None)
    assert evaluated["epoch"] == 6
    for key in ("pred_loss", "extrap_loss", "recons_loss"):
        assert evaluated["eval"][key] == pytest.approx(written["eval"][key], rel=1e-5)
    backwards = CliRunner().invoke(app, ["rollout", str(run_dir), "--speed", "-1", "--steps", "5", "--device", "cpu"])
    assert backwards.exit_code == 0, backwards.output
    assert Image.open(run_dir / "rollout.png").size[1] > Image.open(run_dir / "rollout.png").size[0] / 10
    no_prior = CliRunner().invoke(app, ["rollout", str(run_dir), "--prior", "--device", "cpu"])
    assert no_prior.exit_code == 2 and "has no prior to sample from" in no_prior.stderr


@pytest.mark.slow(seconds=25)
def test_a_compiled_run_trains_as_the_eager_one_and_its_checkpoint_loads_eagerly(tmp_path, one_thread):
    """``training.compile``: the PAIG decoder's batch size differs between the rollout and the
    reconstruction, which once crashed the compiler; the learned parameters match eager training."""
    def run(name: str, compiled: bool) -> dict:
        config = resolve_config(task="spring_color", overrides=[
            "data.n_train=20", "data.n_valid=10", "data.n_test=10", f"data.cache_dir={tmp_path / 'cache'}",
            "training.epochs=2", "training.batch_size=10", "training.optimizer=adam", "training.lr=3e-3",
            "training.device=cpu", "encoder.unet_base=4", "encoder.loc_hidden=32", "logging.tensorboard=false",
            f"training.compile={str(compiled).lower()}", f"logging.out={tmp_path}", f"logging.run_name={name}"])
        return Trainer(config, log=lambda _msg: None, quiet=True).fit()
    eager, compiled = run("eager", False), run("compiled", True)
    for name in ("k", "l"):
        assert compiled["params"][name]["learned"] == pytest.approx(eager["params"][name]["learned"], rel=1e-3)
    assert compiled["eval"]["recons_loss"] == pytest.approx(eager["eval"]["recons_loss"], rel=1e-2)
    evaluated = evaluate_run(tmp_path / "compiled", checkpoint="last", device="cpu", log=lambda _msg: None)
    assert evaluated["eval"]["recons_loss"] == pytest.approx(compiled["eval"]["recons_loss"], rel=1e-3)


@pytest.mark.parametrize("physics, constants", [("spring", 2), ("hamiltonian", 0)])
def test_the_physics_learning_rate_drives_physical_constants_not_a_networks_weights(tmp_path, physics, constants):
    """The fast recipe's physics_lr (3e-2) suits k and l; on a learned H's MLP it would be 15× the
    rate its weights should move at."""
    config = resolve_config(task="spring_color", flags={"physics.name": physics}, overrides=[
        "data.n_train=4", "data.n_valid=2", "data.n_test=2", f"data.cache_dir={tmp_path / 'cache'}",
        "training.device=cpu", "logging.tensorboard=false", f"logging.out={tmp_path}"])
    trainer = Trainer(config, log=lambda _msg: None, quiet=True)
    rates = {id(p): group["base_lr"] for group in trainer.param_groups() for p in group["params"]}
    physical = [rates[id(p)] for p in trainer.pipeline.physics.parameters()]
    assert physical.count(config.training.physics_lr) == constants
    assert physical.count(config.training.lr) == len(physical) - constants
    assert {rates[id(p)] for p in trainer.pipeline.encoder.parameters()} == {config.training.lr}
