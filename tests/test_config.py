"""Config layering: defaults < task preset < file < flags < --set, with plugin params validated early."""
from __future__ import annotations

import pytest

from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.errors import ConfigError, PluginParamsError, UnknownPluginError


def test_defaults_then_preset_then_recipe():
    config = resolve_config()
    assert (config.data.task, config.physics.name, config.integrator.name) == ("spring_color", "spring", "euler")
    assert (config.training.recipe, config.training.optimizer, config.training.lr) == ("fast", "adam", 2e-3)
    assert config.encoder.params["coordinates"] == "soft_argmax" and config.objective.params["recons_weight"] == 3.0
    paper = resolve_config(flags={"training.recipe": "paper"})
    assert (paper.training.optimizer, paper.training.lr, paper.training.batch_size) == ("rmsprop_tf", 6e-4, 100)
    assert (paper.objective.params["warmup_steps"], paper.objective.params["latent_weight"],
            paper.training.physics_lr) == (0, 0.0, None)
    assert (paper.encoder.params["coordinates"], paper.encoder.params["velocity"]) == ("mlp", "mlp")
    hgn = resolve_config(task="pendulum")
    assert (hgn.training.optimizer, hgn.encoder.name, hgn.training.recipe) == ("adam", "hgn", "paper")
    assert (hgn.encoder.params["latent"], hgn.physics.params["latent_channels"],
            hgn.data.pred_steps) == ("maps", 16, 29)
    fast = resolve_config(task="two_body", flags={"training.recipe": "fast"})
    assert (fast.decoder.params["latent"], fast.decoder.params["latent_channels"],
            fast.data.pred_steps) == ("vector", 4, 10)
    assert fast.decoder.params["angles"] == 0 and hgn.decoder.params["angles"] == 0  # maps have no angles
    swinging = resolve_config(task="pendulum", flags={"training.recipe": "fast"})
    assert [getattr(swinging, section).params["angles"] for section in ("encoder", "physics", "decoder")] == [1, 1, 1]
    with pytest.raises(ConfigError, match="training.recipe: objective 'hgn' has no recipe 'quick'; available: paper, "
                                          "fast"):
        resolve_config(task="pendulum", flags={"training.recipe": "quick"})
    three_body = resolve_config(task="3bp_color", flags={"training.recipe": "paper"})
    assert (three_body.data.image_size, three_body.data.n_objects, three_body.physics.name) == (36, 3, "gravity")
    assert (three_body.training.lr, three_body.data.dt, three_body.data.pred_steps) == (1e-3, 0.5, 12)


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "training:\n  lr: 0.001\n  epochs: 7\nintegrator:\n  name: euler\n  substeps: 3\n"),
    (".toml", "[training]\nlr = 0.001\nepochs = 7\n[integrator]\nname = 'euler'\nsubsteps = 3\n"),
])
def test_each_source_overrides_the_one_below(tmp_path, suffix, text):
    path = tmp_path / f"exp{suffix}"
    path.write_text(text)
    from_file = resolve_config(config_file=path)
    assert (from_file.training.lr, from_file.training.epochs, from_file.integrator.params["substeps"]) == (1e-3, 7, 3)
    with_flag = resolve_config(config_file=path, flags={"training.lr": 2e-3})
    assert (with_flag.training.lr, with_flag.training.epochs) == (2e-3, 7)
    with_set = resolve_config(config_file=path, flags={"training.lr": 2e-3}, overrides=["training.lr=3e-3"])
    assert with_set.training.lr == 3e-3


def test_plugin_defaults_are_filled_and_switching_plugin_drops_old_params():
    config = resolve_config(overrides=["physics.k=2.5"])
    assert config.physics.params["k"] == 2.5 and "l" in config.physics.params
    switched = resolve_config(flags={"physics.name": "gravity"}, overrides=["training.seed=3"])
    assert "k" not in switched.physics.params and "g" in switched.physics.params


def test_plugin_params_are_validated_before_anything_runs():
    with pytest.raises(PluginParamsError, match=r"physics 'spring': k: Input should be greater than 0"):
        resolve_config(overrides=["physics.k=-1"])
    with pytest.raises(PluginParamsError, match=r"integrator 'euler': substeps: Input should be a valid integer"):
        resolve_config(overrides=["integrator.substeps=many"])
    with pytest.raises(UnknownPluginError, match=r"integrator.name: unknown integrator 'leapfrg' \(did you mean "
                                                 r"'leapfrog'\?\)"):
        resolve_config(flags={"integrator.name": "leapfrg"})


def test_bad_sections_and_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"training.epochs: Input should be a valid integer"):
        resolve_config(overrides=["training.epochs=ten"])
    with pytest.raises(ConfigError, match=r"trainig: unknown field"):
        resolve_config(overrides=["trainig.lr=1"])
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config(config_file=tmp_path / "missing.yaml")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="is malformed") as err:
        resolve_config(config_file=bad_yaml)
    assert "\n" not in str(err.value)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[training\nlr = 1\n")
    with pytest.raises(ConfigError, match="is malformed"):
        resolve_config(config_file=bad_toml)


@pytest.mark.parametrize("flags, message", [
    ({"physics.name": "bouncing", "integrator.name": "rk4"}, "cannot apply the hard constraints"),
    ({"physics.name": "hamiltonian_latent"}, "works on objects states but physics 'hamiltonian_latent' has latent"),
])
def test_incompatible_combinations_are_refused(flags, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(flags=flags)


def test_systems_without_pixel_coordinates_need_an_encoder_that_handles_them():
    with pytest.raises(ConfigError, match="physics 'pendulum' has generalized states; use encoder \\(none "
                                          "installed\\)"):
        resolve_config(flags={"physics.name": "pendulum"})


def test_a_generated_dataset_takes_the_data_sections_frame_size_and_the_tasks_own_params(tmp_path):
    from pivf.core.kernel.build import generated_task_params, open_dataset

    overrides = ["data.image_size=24", "data.n_train=2", "data.n_valid=1", "data.n_test=1",
                 f"data.cache_dir={tmp_path}", "data.task_params={radius: 1.5}"]
    config = resolve_config(task="spring_color", overrides=overrides)
    assert generated_task_params(config) == {"image_size": 24, "radius": 1.5}
    dataset = open_dataset(config, log=lambda _message: None)
    assert tuple(dataset.train.shape[2:4]) == (24, 24)
    assert dataset.info.params["radius"] == 1.5
    assert generated_task_params(resolve_config(task="3bp_color")) == {}  # its preset is its defaults


def test_a_datasets_recorded_frame_interval_and_size_outrank_the_task_preset(tmp_path):
    """A recording's dt is the camera's: the task preset's dt would scale every learned rate."""
    from pivf.core.data.generate import generate_dataset
    from pivf.core.kernel.config import resolve_with_sources

    train, _ = generate_dataset("spring_color", tmp_path, 2, 1, 1, seed=0, params={"dt": 0.25, "image_size": 48})
    config, sources = resolve_with_sources(task="spring_color", flags={"data.path": train})
    assert (config.data.dt, config.data.image_size) == (0.25, 48)
    assert sources["data.dt"] == sources["data.image_size"] == "dataset"
    mine, _ = resolve_with_sources(task="spring_color", flags={"data.path": train}, overrides=["data.dt=0.5"])
    assert mine.data.dt == 0.5  # a value the user sets outranks the record
    plain, _ = resolve_with_sources(task="spring_color", flags={"data.path": tmp_path / "absent.npz"})
    assert plain.data.dt == 0.3
