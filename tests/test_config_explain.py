"""A config that explains itself: every field described, the layer that set each value, derived
fields refused, recipes as files, lengths the data lacks refused."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.kernel.config import ExperimentConfig, resolve_config, resolve_with_sources
from pivf.core.kernel.errors import ConfigError
from pivf.core.kernel.registry import registry

ROOT = Path(__file__).parents[1]
runner = CliRunner()


def undescribed(model: type[BaseModel], where: str) -> list[str]:
    return [f"{where}.{name}" for name, field in model.model_fields.items() if not field.description]


def test_every_core_field_and_every_built_in_plugin_param_is_described():
    missing = [field for section, info in ExperimentConfig.model_fields.items()
               if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
               and info.annotation.model_fields.keys() - {"name"}
               for field in undescribed(info.annotation, section)]
    built_in = [row for row in registry().rows() if row.distribution == "pivf"]
    assert len(built_in) > 40  # every kind, tasks included
    missing += [field for row in built_in for field in undescribed(row.cls.Params, f"{row.kind} {row.name}")]
    assert missing == []


def test_the_example_plugin_describes_its_params():
    path = ROOT / "examples" / "pivf-charged-particles" / "pivf_charged" / "__init__.py"
    spec = importlib.util.spec_from_file_location("pivf_charged_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert undescribed(module.ChargedParams, "charged_particles") == []


#: the recipes as recorded (first from the objectives' code); the files must hold exactly these
RECORDED_RECIPES = {
    "paig": {
        "fast": {
            "data": {"n_train": 1000},
            "encoder": {"name": "paig_unet", "coordinates": "soft_argmax", "velocity": "differences",
                        "colour_path": 20.0},
            "training": {"optimizer": "adam", "lr": 2e-3, "physics_lr": 3e-2, "batch_size": 16, "grad_clip": 0.0,
                         "steps": 1860, "eval_every": 1},
            "objective": {"name": "paig", "warmup_steps": 300, "discovery_share": 0.25, "horizon_steps": 300,
                          "latent_weight": 1.0, "warmup_frames": "inputs", "guided_reset": True},
        },
        "paper": {"encoder": {"name": "paig_unet", "coordinates": "mlp", "velocity": "mlp", "colour_path": 0.0}},
        "keypoints": {"data": {"pred_steps": 10}, "encoder": {"background": "median"},
                      "physics": {"name": "keypoint_hamiltonian"}, "integrator": {"name": "leapfrog", "substeps": 4},
                      "decoder": {"name": "spatial_transformer"}, "objective": {"backward_share": 0.5}},
    },
    "hgn": {
        "paper": {section: {"name": name, "latent": "maps", "latent_channels": 16, "angles": 0}
                  for section, name in (("encoder", "hgn"), ("physics", "hamiltonian_latent"),
                                        ("decoder", "hgn_conv"))},
        "fast": {
            "data": {"pred_steps": 10, "n_train": 2000},
            "objective": {"variational": False},
            "encoder": {"name": "hgn", "latent": "vector", "first_channels": 16, "hidden_channels": 32,
                        "hidden_layers": 3, "z_channels": 16, "transformer_channels": 32},
            "physics": {"name": "hamiltonian_latent", "latent": "vector", "hidden": [64, 64], "activation": "swish",
                        "kinetic": "quadratic"},
            "decoder": {"name": "hgn_conv", "latent": "vector", "filters": 32},
            "training": {"lr": 1e-3, "steps": 6250},
        },
    },
    "positions": {
        "fast": {
            "data": {"n_train": 1000},
            "encoder": {"name": "paig_unet", "coordinates": "soft_argmax", "velocity": "differences",
                        "colour_path": 20.0, "background": "median"},
            "training": {"optimizer": "adam", "lr": 2e-3, "physics_lr": 3e-2, "batch_size": 16, "grad_clip": 0.0,
                         "steps": 1000, "eval_every": 1},
            "objective": {"name": "positions"},
        },
    },
}


@pytest.mark.parametrize("objective", ["paig", "hgn", "positions"])
def test_recipe_files_hold_the_recorded_recipes(objective):
    recipes = registry().get("objective", objective).recipes
    assert list(recipes) == list(RECORDED_RECIPES[objective])  # the order too: the first is the default
    for name, layer in RECORDED_RECIPES[objective].items():
        assert repr(recipes[name].layer) == repr(layer)  # types too: 2e-3 a float, 1860 an int


@pytest.mark.parametrize("key", ["spring_color/fast", "spring_color/paper", "mass_spring/fast", "mass_spring/paper"])
def test_resolved_configs_are_the_recorded_ones(key):
    """The resolved configs recorded for each recipe (first from the recipes in code, before they became
    files): a change to a recipe must change them here too, deliberately."""
    task, recipe = key.split("/")
    before = json.loads((Path(__file__).parent / "resolved_configs.json").read_text())[key]
    assert json.loads(json.dumps(resolve_config(task=task, flags={"training.recipe": recipe}).to_dict())) == before


def test_config_recipes_lists_name_objective_and_description():
    result = runner.invoke(app, ["config", "recipes"])
    assert result.exit_code == 0, result.output
    rows = [line.split(None, 2) for line in result.stdout.splitlines()]
    assert rows[0] == ["NAME", "OBJECTIVE", "DESCRIPTION"]
    assert [row[:2] for row in rows[1:]] == [["paper", "hgn"], ["fast", "hgn"], ["fast", "paig"], ["paper", "paig"],
                                      ["keypoints", "paig"], ["fast", "positions"]]
    assert rows[3][2].startswith("finds the objects and the physical parameters in minutes on a CPU")


def test_each_value_has_the_layer_that_set_it(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("training:\n  batch_size: 8\n")
    config, sources = resolve_with_sources(task="3bp_color", config_file=path, flags={"training.lr": 0.01},
                                           overrides=["integrator.substeps=7"])
    assert {key: sources[key] for key in ("data.task", "data.image_size", "data.n_train", "training.batch_size",
                                          "training.lr", "integrator.substeps", "logging.out", "encoder.dim",
                                          "encoder.input_steps", "physics.n_objects", "training.recipe")} == {
        "data.task": "flag", "data.image_size": "task 3bp_color", "data.n_train": "recipe fast",
        "training.batch_size": "config file", "training.lr": "flag", "integrator.substeps": "--set",
        "logging.out": "default", "encoder.dim": "default", "encoder.input_steps": "derived from data.input_steps",
        "physics.n_objects": "derived from data.n_objects", "training.recipe": "default"}
    assert set(sources) == {f"{section}.{field}" for section, fields in config.to_dict().items() for field in fields}
    hgn = resolve_with_sources(task="mass_spring")[1]
    assert hgn["encoder.variational"] == "derived from objective.variational"


def test_epochs_over_a_recipe_in_steps_is_the_source_of_the_dropped_steps():
    config, sources = resolve_with_sources(flags={"training.epochs": 5})
    assert (config.training.steps, sources["training.steps"], sources["training.epochs"]) == (None, "flag", "flag")


def test_a_plugin_switched_by_a_higher_layer_forgets_the_lower_params_sources():
    assert resolve_with_sources()[1]["integrator.substeps"] == "task spring_color"  # euler's 5 substeps
    config, sources = resolve_with_sources(flags={"integrator.name": "leapfrog"})
    assert (config.integrator.params["substeps"], sources["integrator.name"], sources["integrator.substeps"]) == (
        5, "flag", "default")  # leapfrog's own default


def test_explain_prints_one_line_per_field_grouped_by_section():
    result = runner.invoke(app, ["config", "show", "--explain", "--set", "integrator.substeps=7"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    config = resolve_config()
    assert [line for line in lines if not line.startswith(" ")] == [f"{section}:" for section in config.to_dict()]
    assert len(lines) == 8 + sum(len(fields) for fields in config.to_dict().values())
    by_field = {(section, line.split()[0]): line for section, line in _in_sections(lines)}
    assert by_field["integrator", "substeps"].split()[1:4] == ["7", "--set", "integration"]
    assert by_field["encoder", "input_steps"].split()[1:5] == ["4", "derived", "from", "data.input_steps"]
    assert by_field["training", "lr"].split()[1:5] == ["0.002", "recipe", "fast", "learning"]
    assert by_field["data", "image_size"].split()[1:4] == ["32", "task", "spring_color"]


def _in_sections(lines: list[str]) -> list[tuple[str, str]]:
    section, out = "", []
    for line in lines:
        if line.startswith(" "):
            out.append((section, line))
        else:
            section = line.rstrip(":")
    return out


def test_show_leaves_out_the_derived_copies():
    result = runner.invoke(app, ["config", "show", "--json"])
    shown = json.loads(result.stdout)
    assert "input_steps" not in shown["encoder"] and "pred_steps" not in shown["objective"]
    assert shown["data"]["input_steps"] == 4 and shown["encoder"]["dim"] == 2
    assert sum(len(fields) for fields in shown.values()) == 69  # of 80: 11 copies of data settings


@pytest.mark.parametrize("item, message", [
    ("encoder.input_steps=4", "--set encoder.input_steps: derived from data.input_steps, so it cannot be set; "
                              "set data.input_steps instead"),
    ("encoder.input_steps=3", "encoder.input_steps = 3 conflicts with data.input_steps = 4; encoder.input_steps is "
                              "derived from data.input_steps: set data.input_steps instead"),
    ("decoder.image_size=32", "--set decoder.image_size: derived from data.image_size"),
])
def test_a_derived_field_cannot_be_set(item, message):
    result = runner.invoke(app, ["config", "show", "--set", item])
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr


def test_a_config_file_may_record_derived_fields_equal_to_the_data(tmp_path):
    """A run's config.yaml records every field; used as --config it resolves to the same config."""
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(resolve_config().to_dict()))
    assert resolve_config(config_file=path) == resolve_config()
    with pytest.raises(ConfigError, match="objective.input_steps = 3 conflicts with data.input_steps = 4"):
        resolve_config(config_file=_with(path, "objective", "input_steps", 3))


def _with(path: Path, section: str, field: str, value: object) -> Path:
    tree = json.loads(path.read_text())
    tree[section][field] = value
    path.write_text(json.dumps(tree))
    return path


def test_extrapolation_longer_than_the_test_sequences_is_refused_before_anything_is_written(tmp_path):
    result = runner.invoke(app, ["train", "--set", "data.extrap_steps=25", "--out", str(tmp_path / "runs"),
                                 "--set", f"data.cache_dir={tmp_path / 'cache'}", "--epochs", "1", "-q"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: data.input_steps + data.pred_steps + data.extrap_steps = 35 but the "
                                          "test sequences of a generated spring_color dataset have 30 frames "
                                          "(data.extrap_steps at most 20)"]
    assert list(tmp_path.iterdir()) == []


def test_config_show_help_names_every_layer():
    text = " ".join(runner.invoke(app, ["config", "show", "--help"], terminal_width=200).stdout.split())
    assert "defaults < task preset < the objective's recipe (--recipe) < --config file < flags < --set" in text


def test_a_recipe_that_extends_another_has_its_settings_under_its_own_name():
    config, sources = resolve_with_sources(task="two_body", flags={"objective.name": "paig",
                                                                   "training.recipe": "keypoints"})
    assert (config.training.steps, sources["training.steps"]) == (1860, "recipe keypoints")  # from fast
    assert (config.physics.name, sources["physics.name"]) == ("keypoint_hamiltonian", "recipe keypoints")
    assert config.encoder.params["background"] == "median" and config.data.n_objects == 2
