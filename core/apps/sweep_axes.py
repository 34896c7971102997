"""The axes of a sweep: integrators, seeds, and a grid of config settings (physics among them), from
flags or a sweep file; and the folder names that key each run by its grid values.

A run of a sweep lives in ``OUT/<physics>/<integrator>/<key=value>/.../seed<k>``: one ``key=value``
folder per grid axis, in the order the axes were given, so a sweep over integrators and seeds alone
keeps the plain ``OUT/<physics>/<integrator>/seed<k>``.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pivf.core.kernel.config import parse_override, read_config_file
from pivf.core.kernel.errors import ConfigError

__all__ = ["DEFAULT_INTEGRATORS", "Axes", "folder_parts", "grid_points", "parse_grid", "path_part", "read_axes"]

DEFAULT_INTEGRATORS = ["euler", "leapfrog", "yoshida", "rk4"]
#: settings that have their own axis or that the sweep sets for every run
NOT_GRID = {"integrator.name": "--integrators", "training.seed": "--seeds",
            "logging.out": "--out", "logging.run_name": "the sweep (seed<k>)"}
#: keys of a sweep file
FILE_KEYS = ("integrators", "seeds", "grid")
#: grid keys that name no folder: the physics is already the first folder of every run
UNNAMED = {"physics.name"}


@dataclass(frozen=True)
class Axes:
    integrators: list[str]
    seeds: list[int]
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def describe(self) -> str:
        axes: dict[str, list[Any]] = {"integrators": self.integrators, "seeds": self.seeds, **self.grid}
        return "; ".join(f"{name}: {', '.join(map(str, values))}" for name, values in axes.items())


def read_axes(integrators: str | None, seeds: str | None, grid: list[str] | None, sweep_file: Path | None) -> Axes:
    """The axes from flags and a sweep file (YAML or TOML with ``integrators``, ``seeds`` and ``grid:
    {section.field: [values]}``); an axis set in both is refused."""
    spec: dict[str, Any] = read_config_file(sweep_file) if sweep_file is not None else {}
    unknown = sorted(set(spec) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"{sweep_file}: unknown key '{unknown[0]}'; allowed: {', '.join(FILE_KEYS)}")
    for name, flag in (("integrators", integrators), ("seeds", seeds), ("grid", grid)):
        if flag and name in spec:
            raise ConfigError(f"--{name}: also set by {sweep_file}; give it in one place")
    names = _items(integrators, "--integrators", str) if integrators else _file_list(spec, "integrators", sweep_file)
    seed_items = _items(seeds, "--seeds", int) if seeds else _file_list(spec, "seeds", sweep_file)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seed_items or [0]):
        raise ConfigError(f"{sweep_file}: seeds: expected a list of integers, got {seed_items}")
    grid_axes = parse_grid(grid) if grid else _file_grid(spec.get("grid", {}), sweep_file)
    return Axes(_distinct([str(n) for n in names or DEFAULT_INTEGRATORS], "--integrators"),
                _distinct(seed_items or [0], "--seeds"), grid_axes)


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``--grid section.field=v1,v2`` (repeatable) → {dotted key: values}; each value read as YAML."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        path, _ = parse_override(item, "--grid")
        key = ".".join(path)
        raw = item.partition("=")[2]
        values = [parse_override(f"{key}={part}", "--grid")[1] for part in raw.split(",") if part.strip()]
        _add_axis(grid, key, values, "--grid")
    return grid


def _file_grid(spec: Any, where: Path | None) -> dict[str, list[Any]]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: grid: expected a mapping of section.field to a list of values")
    grid: dict[str, list[Any]] = {}
    for key, values in spec.items():
        _add_axis(grid, str(key), values if isinstance(values, list) else [values], f"{where}: grid")
    return grid


def _add_axis(grid: dict[str, list[Any]], key: str, values: list[Any], where: str) -> None:
    if key in NOT_GRID:
        raise ConfigError(f"{where}: {key} is not a grid axis; it is set by {NOT_GRID[key]}")
    if len(key.split(".")) != 2:
        raise ConfigError(f"{where}: expected section.field=v1,v2, got '{key}'")
    if key in grid:
        raise ConfigError(f"{where}: {key} is given twice")
    if not values:
        raise ConfigError(f"{where} {key}: the list is empty")
    for value in values:
        path_part(key, value, where)
    grid[key] = _distinct(values, f"{where} {key}")


def path_part(key: str, value: Any, where: str = "--grid") -> str:
    """The folder ``key=value`` of a grid value; a value that cannot name a folder is refused."""
    if isinstance(value, (dict, list)) or value is None:
        raise ConfigError(f"{where} {key}: a grid value must be a number, a word or true/false, got "
                          f"{json.dumps(value)}")
    text = value if isinstance(value, str) else json.dumps(value)
    if not text.strip() or "/" in text or "\\" in text or "\0" in text or text.startswith("."):
        raise ConfigError(f"{where} {key}: '{text}' cannot name a folder (no '/', no leading '.', not empty)")
    return f"{key}={text}"


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first axis varying slowest; one empty point for no grid."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def folder_parts(point: dict[str, Any]) -> list[str]:
    return [path_part(key, value) for key, value in point.items() if key not in UNNAMED]


def _items(text: str, option: str, convert: Callable[[str], Any]) -> list[Any]:
    """``a,b,c`` → items."""
    try:
        items = [convert(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected a comma-separated list, got '{text}'") from None
    if not items:
        raise ConfigError(f"{option}: the list is empty")
    return items


def _file_list(spec: dict[str, Any], key: str, where: Path | None) -> list[Any] | None:
    if key not in spec:
        return None
    values = spec[key]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {key}: expected a non-empty list")
    return values


def _distinct(items: list[Any], option: str) -> list[Any]:
    """Each item once: an item listed twice would put two runs in one folder."""
    twice = next((item for i, item in enumerate(items) if item in items[:i]), None)
    if twice is not None:
        raise ConfigError(f"{option}: '{twice}' is listed twice")
    return items
