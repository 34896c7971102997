"""The experiment config: pydantic models and the layering of its sources.

Sources, lowest to highest priority: built-in defaults, the task's preset (``Task.preset``), the
objective's recipe (``training.recipe``, from ``Objective.recipes``, YAML files beside the plugin), a
YAML/TOML file (``--config``), CLI flags, then ``--set section.field=value`` overrides;
``resolve_with_sources`` also tells which of them set each field. Plugin sections hold the
plugin ``name`` plus that plugin's params; once the name is known the params are validated by the
plugin's own model, so a typo in ``physics.k`` fails before anything runs.
"""
from __future__ import annotations

import copy
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pivf.core.data.nuisance import resolve_nuisance
from pivf.core.kernel.errors import ConfigError, PivfUserError, PluginParamsError
from pivf.core.kernel.plugin import Plugin, format_validation_error

if TYPE_CHECKING:
    from pivf.core.kernel.physics import StateKind

__all__ = ["ExperimentConfig", "PluginChoice", "TrainingConfig", "bracket_depth", "check_values", "deep_merge",
           "dump_yaml", "parse_override", "read_config_file", "resolve_config", "set_path", "validate_plugin_sections"]

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


DEFAULT_TASK = "spring_color"


#: ``torch.compile`` modes ``training.compile`` accepts besides true and false
CompileMode = Literal["default", "reduce-overhead", "max-autotune"]

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
    task: str = Field(DEFAULT_TASK, description="the task: its preset sets the other layers' ground and it "
                                                "generates the data when no path is given (`pivf data tasks`)")
    path: Path | None = Field(None, description="a .npz dataset; empty → generate (and cache) a small one")
    image_size: int = Field(32, ge=8, description="frame height and width in pixels")
    n_objects: int = Field(2, ge=1, description="objects in the scene")
    channels: int = Field(3, ge=1, description="colour channels of the frames")
    input_steps: int = Field(4, ge=1, description="frames the encoder sees before prediction starts")
    pred_steps: int = Field(6, ge=1, description="frames predicted and trained on")
    extrap_steps: int = Field(20, ge=0, description="further frames predicted at test time")
    dt: float = Field(0.3, gt=0, description="time between frames")
    n_train: int = Field(500, ge=1, description="size of the generated embedded dataset")
    n_valid: int = Field(100, ge=1, description="validation sequences of the generated dataset")
    n_test: int = Field(100, ge=1, description="test (extrapolation) sequences of the generated dataset")
    seed: int = Field(0, ge=0, lt=2**64, description="seed of the generated dataset (kept apart from training.seed)")
    cache_dir: Path = Field(Path("~/.cache/pivf/data"), description="where generated datasets are cached")
    task_params: dict[str, Any] = Field({}, description="the task's own params for a generated dataset "
                                                         "(see `pivf data tasks`), e.g. rod_length")
    nuisance: dict[str, float] = Field({}, description="what a real camera adds to a generated dataset: a profile "
                                                       "(none, phone) or {nuisance: low|high|number} "
                                                       "(docs/datasets.md, the camera layer)")

    @field_validator("nuisance", mode="before")
    @classmethod
    def _known_nuisances(cls, value: Any) -> dict[str, float]:
        return resolve_nuisance(value)


class TrainingConfig(Section):
    epochs: int = Field(500, ge=0, description="passes over the training set; a layer that sets epochs drops a "
                                               "lower layer's steps")
    steps: int | None = Field(None, ge=1, description="the run's length in optimiser steps, whatever the dataset's "
                                                      "size (epochs are then ignored); empty: epochs decide")
    batch_size: int = Field(100, ge=1, description="sequences per optimiser step")
    lr: float = Field(6e-4, gt=0, description="learning rate of the networks")
    optimizer: Literal["rmsprop_tf", "rmsprop", "adam"] = Field("rmsprop_tf", description="rmsprop_tf: TensorFlow's "
                                                                          "RMSprop, as the original PAIG code")
    grad_clip: float = Field(1.0, ge=0, description="element-wise gradient clip (0 disables)")
    recipe: str | None = Field(None, description="a named config layer of the objective over the task preset "
                                                 "(PAIG: 'fast', its default, or 'paper'); empty: the objective's "
                                                 "first recipe, if it has any")
    physics_lr: float | None = Field(None, gt=0, description="learning rate of the physical constants, not of a "
                                                             "learned physics' networks (default: lr)")
    anneal_at: float = Field(0.75, gt=0, le=1, description="fraction of the run's length (steps or epochs, or of "
                                                         "max_time, whichever is further along) after which lr is "
                                                         "multiplied by anneal_factor")
    anneal_factor: float = Field(0.2, gt=0, le=1, description="lr is multiplied by this at anneal_at")
    seed: int = Field(0, ge=0, lt=2**64, description="seed of the initial weights and of the batches")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")
    eval_every: int = Field(10, ge=1, description="epochs between validations")
    compile: bool | CompileMode = Field(False, description="torch.compile the encoder and decoder: true (mode "
                                        "default) or a torch.compile mode; reduce-overhead replays CUDA graphs on a "
                                        "GPU (docs/BENCHMARKS.md: slower than eager for PAIG on a 2-core CPU; "
                                        "measure it on your device)")
    bf16: bool = Field(False, description="run the vision networks' convolutions under bfloat16 autocast; positions "
                                          "and physics stay float32 (faster on CPUs with AMX and on recent GPUs; "
                                          "docs/BENCHMARKS.md)")
    max_time: float | None = Field(None, gt=0, description="wall-clock budget of the training loop in seconds; "
                                                          "when spent, the run stops and is evaluated and written")


class LoggingConfig(Section):
    out: Path = Field(Path("runs"), description="parent directory of run directories")
    run_name: str | None = Field(None, description="folder name of the run under out; default: task, plugins, "
                                                   "seed and time")
    tensorboard: bool = Field(True, description="write TensorBoard event files into the run directory")
    log_every: int = Field(50, ge=1, description="steps between scalar logs")
    checkpoint_every: int = Field(5, ge=1, description="epochs between checkpoints")

    @field_validator("out", mode="before")
    @classmethod
    def _named(cls, out: Any) -> Any:
        """An empty name would be the current folder, where no run was asked to go."""
        if isinstance(out, str) and not out.strip():
            raise ValueError("empty; name the folder the runs go under (e.g. runs, or . for this folder)")
        return out

    @field_validator("run_name")
    @classmethod
    def _one_folder(cls, name: str | None) -> str | None:
        """A run stays inside ``out``: one plain folder name, no path."""
        if name is not None and (name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name
                                 or Path(name).is_absolute()):
            raise ValueError("must be one folder name (no '/', '..', NUL character or absolute path)")
        return name


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataConfig = DataConfig()
    physics: PluginChoice = PluginChoice(name="spring")
    integrator: PluginChoice = PluginChoice(name="euler")
    encoder: PluginChoice = PluginChoice(name="paig_unet")
    decoder: PluginChoice = PluginChoice(name="spatial_transformer")
    objective: PluginChoice = PluginChoice(name="paig")
    training: TrainingConfig = TrainingConfig()
    logging: LoggingConfig = LoggingConfig()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


#: config section → plugin kind; the objective comes first, as it decides params of the others
PLUGIN_SECTIONS = {"objective": "objective", "physics": "physics", "integrator": "integrator", "encoder": "encoder",
                   "decoder": "decoder"}


# --- sources ----------------------------------------------------------------------------------

class ConfigLoader(yaml.SafeLoader):
    """YAML as a config needs it: ``1e-3`` and ``1e400`` are numbers, as in YAML 1.2 and JSON (PyYAML's
    YAML 1.1 reads a float without a dot or an exponent sign as a string, so ``1e400`` slipped past
    the finiteness check), and a key given twice is an error rather than the last one silently winning."""

    def __init__(self, text: str, where: str) -> None:
        super().__init__(text)
        self.where = where

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # the keys a merge brings in are there to be overridden
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
            try:
                twice = key in lines
            except TypeError:  # an unhashable key, which the base class refuses
                continue
            if twice:
                raise ConfigError(f"{self.where}: key '{key}' is given twice (lines {lines[key]} and {line}); "
                                  f"keep one")
            lines[key] = line
        return super().construct_mapping(node, deep)


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def bracket_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside quoted strings. Checked before parsing, because
    whether a parser's recursion gives out at a depth of hundreds depends on the interpreter's
    recursion limit, which other libraries raise (torch.compile does)."""
    depth = deepest = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if char == quote and not escaped:
                quote = ""
            escaped = not escaped and char == "\\" and quote == '"'
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def load_text(text: str, where: str, toml: bool = False) -> Any:
    """A config's YAML (or JSON) or TOML text as Python values. Input too deep for the parser, with an
    integer too long to convert or with a key twice is a ``ConfigError`` naming ``where``; a syntax
    error is left to the caller (a file is then malformed, a ``--set`` value a string)."""
    if bracket_depth(text) > MAX_DEPTH:
        raise ConfigError(f"{where} is nested too deeply (a config is at most {MAX_DEPTH} levels deep)")
    try:
        if toml:
            return tomllib.loads(text)
        loader = ConfigLoader(text, where)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply (a config is at most {MAX_DEPTH} levels deep)") from None
    except ValueError as exc:
        if isinstance(exc, (ConfigError, tomllib.TOMLDecodeError)):
            raise
        raise ConfigError(f"{where}: unreadable value ({' '.join(str(exc).split())})") from None  # a date 2020-13-45


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
    suffix, where = path.suffix.lower(), f"config file {path}"
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(f"{where}: unknown extension '{path.suffix}'; use .yaml, .yml, .toml or .json")
    try:
        data = load_text(text, where, toml=suffix == ".toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where} is malformed: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of sections, not {type(data).__name__}")
    check_values(data, where, prefix=f"{where}: ")
    check_sections(data, where)
    return upgrade_legacy(data, str(path))


def upgrade_legacy(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A config written before objectives were plugins (``training.objective``, an objective's
    settings in ``training:`` or a section of their own), as an ``objective:`` section, so old runs
    still evaluate and resume. Each objective takes its old settings out (``Objective.legacy_params``);
    each old run recorded every field, so those of the objectives it did not use go."""
    from pivf.core.kernel.registry import registry

    reg = registry()
    training = data.get("training")
    upgraded = copy.deepcopy({**data, "training": training if isinstance(training, dict) else {}})
    named = upgraded["training"].pop("objective", None)
    name = named or ExperimentConfig().objective.name
    found = {other: reg.get("objective", other).legacy_params(upgraded, chosen=other == name)
             for other in reg.names("objective")}
    if named is None and all(params is None for params in found.values()):
        return data
    if isinstance(data.get("objective"), dict):
        raise ConfigError(f"{where}: 'objective:' and settings written before objectives were plugins "
                          f"(training.objective, ...) are both given; keep the objective section only")
    upgraded["objective"] = {"name": name, **(found.get(name) or {})}
    return upgraded


#: values a config may hold, counted with YAML aliases expanded (a 300-byte alias bomb expands to millions)
MAX_CONFIG_VALUES = 10_000
#: levels of nesting a config may have (section, field, then a task's params or a list inside them)
MAX_DEPTH = 16


def check_values(tree: Any, where: str, prefix: str = "") -> None:
    """Refuse non-finite numbers and integers beyond a float's range (naming the field), keys that are
    not text (a YAML date or number), strings that cannot be written out, and configs too large once
    aliases are expanded or nested too deeply. A field is named with ``prefix`` before it
    (``--task-set mass``).

    Checked on the raw values, before pydantic: JSON has no ``inf``, so a plugin section's ``.inf``
    would otherwise come back from its round trip through JSON as a puzzling ``None``.
    """
    stack: list[tuple[str, Any, int]] = [("", tree, 0)]
    seen = 0
    while stack:
        field, node, depth = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES} values (YAML aliases expanded); "
                              f"a config is a few dozen")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: {'.'.join(field.split('.')[:2])} is nested more than {MAX_DEPTH} levels "
                              f"deep")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"{prefix}{field}: must be a finite number, got {node}")
        if isinstance(node, int) and abs(node) > sys.float_info.max:
            raise ConfigError(f"{prefix}{field}: must be a finite number, got an integer of {node.bit_length()} "
                              f"bits")
        odd = [key for key in node if not isinstance(key, str)] if isinstance(node, dict) else []
        if odd:
            raise ConfigError(f"{where}: key {odd[0]} {f'in {field} ' if field else ''}must be a name (text), "
                              f"not {type(odd[0]).__name__}")
        texts = [node] if isinstance(node, str) else list(node) if isinstance(node, dict) else []
        if not all(is_unicode(text) for text in texts):
            what = field if isinstance(node, str) else f"a key{f' in {field}' if field else ''}"
            raise ConfigError(f"{where}: {what} is not valid text (an unpaired surrogate, or bytes that are not "
                              f"UTF-8)")
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((f"{field}.{key}" if field else str(key), value, depth + 1) for key, value in children)


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be written out: a lone surrogate (a YAML ``"\\ud800"``, or an argument's
    bytes that are not UTF-8) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_sections(layer: dict[str, Any], where: str) -> None:
    """A section of the config is a mapping of its fields: ``--set data=1`` would otherwise replace
    the whole section and leave its defaults."""
    for name, value in layer.items():
        if name in ExperimentConfig.model_fields and not isinstance(value, dict):
            raise ConfigError(f"{where}: {name} is a section and must be a mapping of its fields "
                              f"({name}.FIELD), got {value!r}")


def parse_override(item: str, option: str = "--set") -> tuple[list[str], Any]:
    """``section.field=value`` → (["section", "field"], value); the value is parsed as YAML (a value
    YAML cannot parse is a string)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option} expects section.field=value, got '{item}'")
    try:
        value = load_text(raw, f"{option} {key.strip()}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


M = TypeVar("M", bound=BaseModel)


def validate_strictly(model: type[M], values: dict[str, Any], where: str, allowed: list[str] | None = None,
                      error: type[PivfUserError] = ConfigError) -> M:
    """``values`` validated by ``model`` as the JSON-like data a config is, in pydantic's strict mode:
    lax mode reads ``true`` as the number 1 (``training.epochs=true`` trained one epoch) and the
    string "5" as 5. Values JSON has no type for (a YAML date) are strings."""
    try:
        return model.model_validate_json(json.dumps(values, default=str), strict=True)
    except ValidationError as exc:
        raise error(format_validation_error(exc, where, allowed)) from None


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            if replaces_plugin(out, key, value):
                out[key] = copy.deepcopy(value)  # a different plugin: the old one's params do not apply
            else:
                out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def replaces_plugin(base: dict[str, Any], key: str, value: Any) -> bool:
    """Whether ``value`` names another plugin for the plugin section ``key`` of ``base``."""
    return (key in PLUGIN_SECTIONS and isinstance(value, dict) and "name" in value
            and isinstance(base.get(key), dict) and value["name"] != base[key].get("name"))


def set_path(tree: dict[str, Any], path: list[str], value: Any, option: str = "--set") -> None:
    """``tree[path[0]][path[1]]... = value``, refusing a path through a value set before."""
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{option} {'.'.join(path)}: '{part}' is not a section")
    node[path[-1]] = value


#: the sources of a config, lowest priority first, as ``config show --explain`` names them (the task
#: preset and the recipe with their names: "task spring_color", "recipe fast"; "dataset": what the
#: sidecar of ``data.path`` records)
DEFAULT, TASK, RECIPE, DATASET, FILE, FLAG, SET = "default", "task", "recipe", "dataset", "config file", "flag", "--set"


def resolve_config(
    task: str | None = None,
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    validate_plugins: bool = True,
) -> ExperimentConfig:
    """Merge every source in priority order and validate the result (plugins included)."""
    return resolve_with_sources(task, config_file, flags, overrides, validate_plugins)[0]


def resolve_with_sources(
    task: str | None = None,
    config_file: Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    validate_plugins: bool = True,
) -> tuple[ExperimentConfig, dict[str, str]]:
    """The resolved config and, for each ``section.field``, the source that set it (``DEFAULT``,
    "task NAME", "recipe NAME", ``FILE``, ``FLAG``, ``SET``) or "derived from SECTION.FIELD" for a
    plugin param copied from another field; a derived param given by a flag or ``--set`` is refused."""
    file_layer = read_config_file(config_file) if config_file else {}
    flag_layer: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            set_path(flag_layer, dotted.split("."), value)
    set_layer: dict[str, Any] = {}
    for item in overrides or []:
        path, value = parse_override(item)
        set_path(set_layer, path, value)
    check_values({"data": {"task": task}}, "--task")
    check_values(flag_layer, "flags")
    check_values(set_layer, "--set")
    check_sections(set_layer, "--set")

    given = [(SET, set_layer), (FLAG, {"data": {"task": task}}), (FLAG, flag_layer), (FILE, file_layer)]
    chosen_task, task_source = _first("data.task", *given)
    chosen_task = chosen_task or DEFAULT_TASK
    preset = _plugin_attribute("task", chosen_task, "preset")
    defaults = ExperimentConfig().to_dict()
    layers = [(DEFAULT, defaults), (f"{TASK} {chosen_task}", preset)]
    objective, _ = _first("objective.name", *given, (TASK, preset), (DEFAULT, defaults))
    recipes = _plugin_attribute("objective", objective, "recipes")
    recipe, recipe_source = _first("training.recipe", *given)
    recipe = recipe or next(iter(recipes), None)
    if recipe is not None and recipe not in recipes:
        known = ", ".join(recipes) or "none"
        raise ConfigError(f"training.recipe: objective '{objective}' has no recipe '{recipe}'; available: {known}")
    if recipe is not None:
        layers.extend((f"{RECIPE} {recipe}", layer) for layer in recipe_layers(recipes, recipe))
    data_path, _ = _first("data.path", *given)
    layers.append((DATASET, {"data": _recorded_sizes(data_path)}))
    layers.extend([(FILE, file_layer), (FLAG, flag_layer), (SET, set_layer)])
    merged, sources = merge_layers(layers)
    merged = deep_merge(merged, {"data": {"task": chosen_task}, "training": {"recipe": recipe}})
    sources.update({"data.task": task_source, "training.recipe": recipe_source})
    config = validate_strictly(ExperimentConfig, merged, "config")
    if validate_plugins:
        config = validate_plugin_sections(config)
        for key, origin in derived_fields(config).items():
            if sources.get(key) in (FLAG, SET):
                raise ConfigError(f"{sources[key]} {key}: derived from {origin}, so it cannot be set; set {origin} "
                                  f"instead")
            sources[key] = f"derived from {origin}"
    for section, fields in config.to_dict().items():
        for field in fields:
            sources.setdefault(f"{section}.{field}", DEFAULT)  # a plugin's own default
    return config, sources


def recipe_layers(recipes: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A recipe's config layers, those of the recipes it ``extends`` first."""
    recipe = recipes[name]
    return [*(recipe_layers(recipes, recipe.extends) if recipe.extends else []), recipe.layer]


def merge_layers(layers: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """``(source, layer)`` pairs merged in order, and for each ``section.field`` the source that set
    it last (a section switched to another plugin forgets its params' sources with the params)."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for section, fields in layer.items():
            if replaces_plugin(merged, section, fields):
                sources = {key: value for key, value in sources.items() if not key.startswith(f"{section}.")}
            sources.update({f"{section}.{field}": source for field in fields} if isinstance(fields, dict) else {})
        merged = deep_merge(merged, layer)
        if sets_length_in_epochs(layer) and isinstance(merged.get("training"), dict):
            merged["training"]["steps"] = None
            sources["training.steps"] = source
    return merged, sources


def sets_length_in_epochs(layer: dict[str, Any]) -> bool:
    """A run's length is ``training.steps`` or ``training.epochs``, whichever the highest layer that
    names one of them set: ``--epochs 5`` over a recipe sized in steps trains five epochs, so a
    layer that sets epochs alone drops the steps below it."""
    return _lookup(layer, "training.epochs") is not None and _lookup(layer, "training.steps") is None


def _plugin_attribute(kind: str, name: Any, attribute: str) -> dict[str, Any]:
    """A config layer a plugin declares (a task's preset, an objective's recipes); empty when no
    plugin of that name is installed (validation then names the problem)."""
    from pivf.core.kernel.registry import registry

    if not isinstance(name, str) or name not in registry().names(kind):
        return {}
    return getattr(registry().get(kind, name), attribute)


def _recorded_sizes(path: Any) -> dict[str, Any]:
    """The frame size, channels, objects and frame interval the sidecar of the dataset at ``path``
    records: a recording's dt is the camera's, not the task preset's, and a wrong dt scales every
    learned rate. Empty without a path or a sidecar (loading the dataset later names any defect)."""
    from pivf.core.data.dataset import recorded_sizes

    return recorded_sizes(Path(path)) if isinstance(path, (str, Path)) else {}


def _first(dotted: str, *layers: tuple[str, dict[str, Any]]) -> tuple[Any, str]:
    """The value at ``dotted`` in the first ``(source, layer)`` that sets it, and that source
    (``(None, DEFAULT)`` when none does)."""
    return next(((value, source) for source, layer in layers if (value := _lookup(layer, dotted)) is not None),
                (None, DEFAULT))


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


#: data fields a plugin's params derive: a plugin whose params model has one of these fields gets the
#: value from ``data:``, so sizes always agree (a flag or ``--set`` of the copy is refused)
DATA_DERIVED = ("image_size", "channels", "n_objects", "input_steps", "pred_steps", "dt")


def data_implied_params(config: ExperimentConfig) -> dict[str, Any]:
    """Plugin params the data decides (``DATA_DERIVED``) and their values."""
    return {field: getattr(config.data, field) for field in DATA_DERIVED}


def derived_fields(config: ExperimentConfig) -> dict[str, str]:
    """``section.field`` of each plugin param that is a copy of another field → that field: the data's
    sizes (``DATA_DERIVED``) and what the objective implies (``Objective.implied_params``)."""
    from pivf.core.kernel.registry import registry

    reg = registry()
    origins = {field: f"data.{field}" for field in DATA_DERIVED}
    objective = reg.get("objective", config.objective.name)
    implied = objective.implied_params(objective.validate_params(config.objective.params))
    origins.update({field: f"objective.{field}" for field in implied})
    return {f"{section}.{field}": origin for section, kind in PLUGIN_SECTIONS.items()
            for field in reg.get(kind, getattr(config, section).name).Params.model_fields
            if (origin := origins.get(field)) and origin != f"{section}.{field}"}


def validate_plugin_sections(config: ExperimentConfig) -> ExperimentConfig:
    """Check each plugin section against its plugin's params model, with the values the data implies
    filled in (a conflicting explicit value is an error), and fill in the plugin's defaults."""
    from pivf.core.kernel.registry import registry

    reg = registry()
    try:  # the task names the run and decides the metrics' labels
        reg.get("task", config.data.task)
    except Exception as exc:
        raise type(exc)(f"data.task: {exc}") from None
    implied = {field: (f"data.{field}", value) for field, value in data_implied_params(config).items()}
    resolved = config.to_dict()
    for section, kind in PLUGIN_SECTIONS.items():
        choice: PluginChoice = getattr(config, section)
        try:
            cls = reg.get(kind, choice.name)
        except Exception as exc:
            raise type(exc)(f"{section}.name: {exc}") from None
        params = dict(choice.params)
        for field, (origin, value) in implied.items():
            if field not in cls.Params.model_fields:
                continue
            if field in params and params[field] != value:
                raise ConfigError(f"{section}.{field} = {params[field]!r} conflicts with {origin} = {value!r}; "
                                  f"{section}.{field} is derived from {origin}: set {origin} instead")
            params[field] = value
        validated = validate_strictly(cls.Params, params, f"{kind} '{choice.name}'", sorted(cls.Params.model_fields),
                                      PluginParamsError)
        resolved[section] = {"name": choice.name, **json.loads(validated.model_dump_json())}
        if kind == "objective":
            implications = reg.get("objective", choice.name).implied_params(validated)
            implied.update({field: (f"objective.{field}", value) for field, value in implications.items()})
    config = ExperimentConfig.model_validate(resolved)
    check_compatibility(config)
    return config


def check_compatibility(config: ExperimentConfig) -> None:
    """Refuse plugin combinations that cannot work together, before anything runs."""
    from pivf.core.kernel.registry import registry

    reg = registry()
    physics = reg.get("physics", config.physics.name)
    integrator = reg.get("integrator", config.integrator.name)
    if physics.constrained(config.physics.params) and not integrator.supports_constraints:
        raise ConfigError(
            f"integrator '{integrator.name}' cannot apply the hard constraints (wall bounces, rods) of physics "
            f"'{physics.name}'; use one of: "
            f"{', '.join(n for n in reg.names('integrator') if reg.get('integrator', n).supports_constraints)}")
    check_shared_fields(config)
    for section in ("encoder", "decoder", "objective"):
        plugin = reg.get(section, getattr(config, section).name)
        if physics.state not in states_handled(plugin):
            fitting = [n for n in reg.names(section) if physics.state in states_handled(reg.get(section, n))]
            raise ConfigError(
                f"{section} '{plugin.name}' works on {'/'.join(states_handled(plugin))} states but physics "
                f"'{physics.name}' has {physics.state} states; use {section} "
                f"{' or '.join(fitting) or '(none installed)'}")


def check_shared_fields(config: ExperimentConfig) -> None:
    """Every field a plugin's params declare shared (``PluginParams.shared_fields``) holds one value
    across the sections that have it."""
    from pivf.core.kernel.registry import registry

    reg = registry()
    chosen = {section: getattr(config, section) for section in PLUGIN_SECTIONS}
    shared = dict.fromkeys(field for section, choice in chosen.items()
                           for field in reg.get(PLUGIN_SECTIONS[section], choice.name).Params.shared_fields)
    for field in shared:
        values = {section: choice.params[field] for section, choice in chosen.items() if field in choice.params}
        if len(set(values.values())) > 1:
            raise ConfigError(f"{field} must be the same in every section that has it: " + ", ".join(
                f"{section}.{field} = {value}" for section, value in values.items()) + " differ")


def states_handled(cls: type[Plugin[Any]]) -> tuple[StateKind, ...]:
    """The state kinds an encoder, decoder or objective works on (see ``PhysicsSystem.state``)."""
    from pivf.core.kernel.model import Decoder, Encoder
    from pivf.core.kernel.objective import Objective

    return cls.states if issubclass(cls, (Encoder, Decoder, Objective)) else ()


def dump_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
