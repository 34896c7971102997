"""The experiment flags shared by ``train``, ``config show`` and ``compare``, declared once.

``with_config_flags`` appends these options to a command's signature and hands the command a fully
resolved ``ExperimentConfig`` instead, so every command layers config sources the same way; a command
that also takes ``given`` learns which of these flags were on its command line, one that takes
``sources`` which layer set each field (``resolve_with_sources``), one that takes ``resolve`` gets
the config again with more ``--set`` items after the command line's (a sweep's grid points).
"""
from __future__ import annotations

import functools
import inspect
import math
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pivf.core.kernel.config import ExperimentConfig, check_values, parse_override, resolve_with_sources, set_path
from pivf.core.kernel.errors import ConfigError, PivfUserError

PANEL = "Experiment"


def _flag(kind: Any, help: str, *names: str) -> Any:
    """An experiment flag; None when not given, so the layers below it decide."""
    return Annotated[kind | None, typer.Option(*names, help=help, rich_help_panel=PANEL)]


# flag name → (dotted config path or None, annotation)
_FLAGS: dict[str, tuple[str | None, Any]] = {
    "task": ("data.task", _flag(str, "task preset, e.g. spring_color, 3bp_color, pendulum (see `pivf data tasks`)")),
    "data": ("data.path", _flag(Path, "dataset .npz; default: generate and cache a small one for the task")),
    "physics": ("physics.name", _flag(str, "physics plugin (see `pivf plugins --kind physics`)")),
    "integrator": ("integrator.name", _flag(str, "integrator plugin: euler, leapfrog, yoshida, rk4, dopri5, ...")),
    "encoder": ("encoder.name", _flag(str, "encoder plugin")),
    "decoder": ("decoder.name", _flag(str, "decoder plugin")),
    "objective": ("objective.name", _flag(str, "objective plugin: what is predicted and scored (paig, hgn, ...)")),
    "recipe": ("training.recipe", _flag(str, "the objective's training recipe; PAIG: fast (default; minutes on a CPU) "
                                             "or paper (the original code's); HGN: paper (default) or fast "
                                             "(HGN++-style, minutes on a CPU)")),
    "epochs": ("training.epochs", _flag(int, "training epochs")),
    "batch_size": ("training.batch_size", _flag(int, "sequences per batch")),
    "lr": ("training.lr", _flag(float, "learning rate")),
    "seed": ("training.seed", _flag(int, "random seed")),
    "device": ("training.device", _flag(str, "auto, cpu, cuda or cuda:N")),
    "max_time": ("training.max_time", _flag(str, "stop training when this much wall-clock time is spent (e.g. 90s, "
                                                 "10m, 1h30m), then evaluate and write the run as usual")),
    # a str: '' must reach the check, not become '.'
    "out": ("logging.out", _flag(str, "parent directory for run directories")),
    "config": (None, _flag(Path, "YAML or TOML config file", "--config", "-c")),
    "set": (None, _flag(list[str], "override: section.field=value (repeatable)", "--set", "-s")),
}


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")


def parse_duration(text: str, option: str = "--max-time") -> float:
    """``90s``, ``10m``, ``1h30m`` or plain seconds → seconds (> 0)."""
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if re.fullmatch(r"\d+(?:\.\d*)?", text):
        seconds = float(text)
    elif match and any(match.groups()):
        hours, minutes, secs = (float(group or 0) for group in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(f"{option}: expected a positive duration such as 90s, 10m or 1h30m (or seconds), "
                          f"got '{text}'")
    return seconds


def flag_name(name: str) -> str:
    """``batch_size`` → ``--batch-size``: how a shared flag is spelled on the command line."""
    return "--" + name.replace("_", "-")


def config_from_flags(values: dict[str, Any]) -> tuple[ExperimentConfig, dict[str, str]]:
    flags = {path: values.get(name) for name, (path, _) in _FLAGS.items() if path}
    if flags["training.max_time"] is not None:
        flags["training.max_time"] = parse_duration(flags["training.max_time"])
    task = flags.pop("data.task")
    return resolve_with_sources(task=task, config_file=values.get("config"), flags=flags, overrides=values.get("set"))


def with_config_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``command(config, ...)``: the CLI sees the shared flags, the command a resolved config."""
    # annotations resolved: under ``from __future__ import annotations`` they are strings, which typer
    # (0.29 on) no longer resolves on a rebuilt signature, losing the options' names and help
    hints = typing.get_type_hints(command, include_extras=True)
    parameters = inspect.signature(command).parameters
    own = [p.replace(annotation=hints[name]) for name, p in parameters.items()
           if name not in ("config", "given", "sources", "resolve")]
    wants_given, wants_sources, wants_resolve = "given" in parameters, "sources" in parameters, "resolve" in parameters
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
              for name, (_, annotation) in _FLAGS.items()]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        shared_values = {name: kwargs.pop(name) for name in _FLAGS}
        if wants_given:
            kwargs["given"] = [flag_name(name) for name, value in shared_values.items() if value is not None]
        config, sources = config_from_flags(shared_values)
        if wants_sources:
            kwargs["sources"] = sources
        if wants_resolve:
            kwargs["resolve"] = lambda sets: config_from_flags({**shared_values,
                                                                "set": [*(shared_values["set"] or []), *sets]})[0]
        return command(config, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    del wrapper.__wrapped__  # typer must read the new signature, not the wrapped one
    return wrapper


def name_values(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``--set image_size=64 --set ground_truth.k=3`` → {"image_size": 64, "ground_truth": {"k": 3}};
    a non-finite number is refused naming ``option`` and the name."""
    params: dict[str, Any] = {}
    for item in items or []:
        set_path(params, *parse_override(item, option), option=option)
    check_values(params, option, prefix=f"{option} ")
    return params


def finite(option: str, value: float) -> float:
    """``value`` of a float option, refused when it is inf or nan (click's float type takes both)."""
    if not math.isfinite(value):
        raise PivfUserError(f"{option}: must be a finite number, got {value}")
    return value


def file_to_write(option: str, path: Path | None, kind: str) -> None:
    """Refuse, before any work, an output path that cannot become a ``kind`` file: a folder, or a path
    under a file."""
    if path is None:
        return
    if path.is_dir():
        raise PivfUserError(f"{option}: {path} is a folder; name the {kind} file to write")
    blocking = next((parent for parent in path.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise PivfUserError(f"{option}: {blocking} is a file, so {path} cannot be written")
