"""The experiment config: pydantic models and the layering of its sources.

Sources, lowest to highest priority: built-in defaults, the task preset, a YAML/TOML file
(``--config``), CLI flags, then ``--set section.field=value`` overrides. Plugin sections hold the
plugin ``name`` plus that plugin's params; once the name is known the params are validated by the
plugin's own model, so a typo in ``physics.k`` fails before anything runs.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pivf.core.errors import ConfigError
from pivf.core.plugin import format_validation_error
from pivf.core.presets import DEFAULT_RECIPE, DEFAULT_TASK, PRESETS, RECIPES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PluginChoice(BaseModel):
    """A plugin section: ``name`` plus the plugin's own params (validated by that plugin)."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(Section):
    task: str = DEFAULT_TASK
    path: Path | None = Field(None, description="a .npz dataset; empty → generate (and cache) a small one")
    image_size: int = Field(32, ge=8)
    n_objects: int = Field(2, ge=1)
    channels: int = Field(3, ge=1, description="colour channels of the frames")
    input_steps: int = Field(4, ge=1, description="frames the encoder sees before prediction starts")
    pred_steps: int = Field(6, ge=1, description="frames predicted and trained on")
    extrap_steps: int = Field(20, ge=0, description="further frames predicted at test time")
    dt: float = Field(0.3, gt=0, description="time between frames")
    n_train: int = Field(500, ge=1, description="size of the generated embedded dataset")
    n_valid: int = Field(100, ge=1)
    n_test: int = Field(100, ge=1)
    seed: int = Field(0, ge=0, lt=2**64, description="seed of the generated dataset (kept apart from training.seed)")
    cache_dir: Path = Path("~/.cache/pivf/data")


class TrainingConfig(Section):
    epochs: int = Field(500, ge=0)
    batch_size: int = Field(100, ge=1)
    lr: float = Field(6e-4, gt=0)
    optimizer: Literal["rmsprop_tf", "rmsprop", "adam"] = "rmsprop_tf"
    grad_clip: float = Field(1.0, ge=0, description="element-wise gradient clip (0 disables)")
    recipe: Literal["fast", "paper"] = Field(
        "fast", description="PAIG training recipe layered over the task preset: 'fast' (minutes on a CPU) or "
                            "'paper' (the original code's); see core/presets.py")
    physics_lr: float | None = Field(None, gt=0, description="learning rate of the physical parameters (default: lr)")
    warmup_steps: int = Field(0, ge=0, description="steps of reconstruction alone before prediction is trained")
    horizon_steps: int = Field(0, ge=0, description="steps over which the trained prediction horizon grows from "
                                                   "1 frame to data.pred_steps after warm-up (0: all at once)")
    discovery_share: float = Field(0.0, ge=0, lt=1, description="during warm-up, re-initialise an object slot "
                                    "that explains less than this share of what the best slot explains, and start "
                                    "prediction once every slot explains an object (0: off)")
    latent_weight: float = Field(0.0, ge=0, description="weight of the squared distance between rolled-out and "
                                                        "encoded states of the predicted frames")
    anneal_at: float = Field(0.75, gt=0, le=1, description="fraction of the epochs (or of max_time, whichever "
                                                         "is further along) after which lr is multiplied by anneal_factor")
    anneal_factor: float = Field(0.2, gt=0, le=1)
    recons_weight: float = Field(3.0, ge=0, description="α in loss = pred + α·recons")
    objective: Literal["paig", "hgn"] = "paig"
    seed: int = Field(0, ge=0, lt=2**64)
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")
    eval_every: int = Field(10, ge=1, description="epochs between validations")
    max_time: float | None = Field(None, gt=0, description="wall-clock budget of the training loop in seconds; "
                                                          "when spent, the run stops and is evaluated and written")


class HgnConfig(Section):
    """Settings of the HGN objective (``training.objective: hgn``)."""

    mode: Literal["predict", "reconstruct"] = Field(
        "predict", description="predict: infer from the first input_steps frames and predict the rest; "
                               "reconstruct: reconstruct the given sequence (autoencoding)")
    variational: bool = True
    kl_weight: float = Field(1e-2, ge=0, description="fixed β of the KL term (when geco is off)")
    geco: bool = False
    geco_tolerance: float = Field(0.033, gt=0, description="GECO: per-pixel RMS error the constraint aims at")
    geco_alpha: float = Field(0.99, ge=0, lt=1, description="GECO: moving-average factor of the constraint")
    geco_rate: float = Field(0.1, gt=0, description="GECO: speed of the Lagrange multiplier update")


class LoggingConfig(Section):
    out: Path = Field(Path("runs"), description="parent directory of run directories")
    run_name: str | None = Field(None, description="folder name of the run under out; default: task, plugins, "
                                                   "seed and time")
    tensorboard: bool = True
    log_every: int = Field(50, ge=1, description="steps between scalar logs")
    checkpoint_every: int = Field(5, ge=1, description="epochs between checkpoints")

    @field_validator("run_name")
    @classmethod
    def _one_folder(cls, name: str | None) -> str | None:
        """A run stays inside ``out``: one plain folder name, no path."""
        if name is not None and (name in ("", ".", "..") or "/" in name or "\\" in name or Path(name).is_absolute()):
            raise ValueError("must be one folder name (no '/', '..' or absolute path)")
        return name


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataConfig = DataConfig()
    physics: PluginChoice = PluginChoice(name="spring")
    integrator: PluginChoice = PluginChoice(name="euler")
    encoder: PluginChoice = PluginChoice(name="paig_unet")
    decoder: PluginChoice = PluginChoice(name="spatial_transformer")
    training: TrainingConfig = TrainingConfig()
    hgn: HgnConfig = HgnConfig()
    logging: LoggingConfig = LoggingConfig()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


PLUGIN_SECTIONS = {"physics": "physics", "integrator": "integrator", "encoder": "encoder", "decoder": "decoder"}


# --- sources ----------------------------------------------------------------------------------

def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or TOML file as a dict; missing or malformed files are user errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror})") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file {path}: unknown extension '{path.suffix}'; use .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        detail = str(exc).replace("\n", " ")
        raise ConfigError(f"config file {path} is malformed: {' '.join(detail.split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    check_values(data, f"config file {path}")
    return data


#: values a config may hold, counted with YAML aliases expanded (a 300-byte alias bomb expands to millions)
MAX_CONFIG_VALUES = 10_000


def check_values(tree: Any, where: str) -> None:
    """Refuse non-finite numbers (naming the field) and configs too large once aliases are expanded.

    Checked on the raw values, before pydantic: JSON has no ``inf``, so a plugin section's ``.inf``
    would otherwise come back from its round trip through JSON as a puzzling ``None``.
    """
    stack: list[tuple[str, Any]] = [("", tree)]
    seen = 0
    while stack:
        field, node = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES} values (YAML aliases expanded); "
                              f"a config is a few dozen")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"{field}: must be a finite number, got {node}")
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((f"{field}.{key}" if field else str(key), value) for key, value in children)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``section.field=value`` → (["section", "field"], value); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.field=value, got '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            if key in PLUGIN_SECTIONS and "name" in value and value["name"] != out[key].get("name"):
                out[key] = copy.deepcopy(value)  # a different plugin: the old one's params do not apply
            else:
                out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(path)}: '{part}' is not a section")
    node[path[-1]] = value


def resolve_config(
    task: str | None = None,
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    validate_plugins: bool = True,
) -> ExperimentConfig:
    """Merge every source in priority order and validate the result (plugins included)."""
    file_layer = read_config_file(config_file) if config_file else {}
    flag_layer: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set_path(flag_layer, dotted.split("."), value)
    set_layer: dict[str, Any] = {}
    for item in overrides or []:
        path, value = parse_override(item)
        _set_path(set_layer, path, value)
    check_values(flag_layer, "flags")
    check_values(set_layer, "--set")

    chosen_task = _first("data.task", set_layer, {"data": {"task": task}}, flag_layer, file_layer) or DEFAULT_TASK
    preset = PRESETS.get(chosen_task, {})
    layers = [ExperimentConfig().to_dict(), preset]
    if _first("training.objective", set_layer, flag_layer, file_layer, preset) in (None, "paig"):
        recipe = _first("training.recipe", set_layer, flag_layer, file_layer) or DEFAULT_RECIPE
        layers.append(RECIPES.get(recipe, {}))  # an unknown name is reported by validation below
    layers.extend([file_layer, flag_layer, set_layer, {"data": {"task": chosen_task}}])
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    try:
        config = ExperimentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "config")) from None
    if validate_plugins:
        config = validate_plugin_sections(config)
    return config


def _first(dotted: str, *layers: dict[str, Any]) -> Any:
    """The value at ``dotted`` in the first layer that sets it."""
    return next((value for layer in layers if (value := _lookup(layer, dotted)) is not None), None)


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def data_implied_params(config: ExperimentConfig) -> dict[str, Any]:
    """Plugin params the data decides (and the HGN objective, for the encoder's KL): a plugin whose
    params model has one of these fields gets the value from here, so sizes always agree."""
    data = config.data
    implied: dict[str, Any] = {"image_size": data.image_size, "channels": data.channels,
                               "n_objects": data.n_objects, "input_steps": data.input_steps, "dt": data.dt}
    if config.training.objective == "hgn":
        implied["variational"] = config.hgn.variational
    return implied


def validate_plugin_sections(config: ExperimentConfig) -> ExperimentConfig:
    """Check each plugin section against its plugin's params model, with the values the data implies
    filled in (a conflicting explicit value is an error), and fill in the plugin's defaults."""
    from pivf.core.registry import registry

    reg = registry()
    if config.data.task not in reg.names("task"):  # it names the run and decides the metrics' labels
        known = ", ".join(reg.names("task"))
        raise ConfigError(f"data.task: unknown task '{config.data.task}'; available: {known}")
    implied = data_implied_params(config)
    resolved = config.to_dict()
    for section, kind in PLUGIN_SECTIONS.items():
        choice: PluginChoice = getattr(config, section)
        try:
            cls = reg.get(kind, choice.name)
        except Exception as exc:
            raise type(exc)(f"{section}.name: {exc}") from None
        params = dict(choice.params)
        for field, value in implied.items():
            if field not in cls.Params.model_fields:
                continue
            if field in params and params[field] != value:
                origin = "hgn.variational" if field == "variational" else f"data.{field}"
                raise ConfigError(f"{section}.{field} = {params[field]!r} conflicts with {origin} = {value!r}; "
                                  f"set {origin} instead")
            params[field] = value
        validated = cls.validate_params(params)
        resolved[section] = {"name": choice.name, **json.loads(validated.model_dump_json())}
    config = ExperimentConfig.model_validate(resolved)
    check_compatibility(config)
    return config


def check_compatibility(config: ExperimentConfig) -> None:
    """Refuse plugin combinations that cannot work together, before anything runs."""
    from pivf.core.registry import registry

    reg = registry()
    physics = reg.get("physics", config.physics.name)
    integrator = reg.get("integrator", config.integrator.name)
    encoder = reg.get("encoder", config.encoder.name)
    decoder = reg.get("decoder", config.decoder.name)
    if physics.has_constraints and not integrator.supports_constraints:
        raise ConfigError(
            f"integrator '{integrator.name}' cannot apply the hard constraints (wall bounces) of physics "
            f"'{physics.name}'; use one of: {', '.join(n for n in reg.names('integrator') if reg.get('integrator', n).supports_constraints)}")
    for field in ("latent_channels", "latent_size"):
        values = {section: getattr(config, section).params[field] for section in ("encoder", "physics", "decoder")
                  if field in getattr(config, section).params}
        if len(set(values.values())) > 1:
            raise ConfigError("the latent state must have one shape: " + ", ".join(
                f"{section}.{field} = {value}" for section, value in values.items()) + " differ")
    for section, plugin in (("encoder", encoder), ("decoder", decoder)):
        if physics.state not in plugin.states:
            fitting = [n for n in reg.names(section) if physics.state in reg.get(section, n).states]
            raise ConfigError(
                f"{section} '{plugin.name}' works on {'/'.join(plugin.states)} states but physics "
                f"'{physics.name}' has {physics.state} states; use {section} {' or '.join(fitting) or '(none installed)'}")


def dump_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
