"""Recipes: named config layers that train an objective well, kept as YAML files beside the plugin.

A recipe file ``<objective>-<name>.yaml`` holds a one-line ``description`` and the ``config`` layer
it puts over the task preset (``training.recipe`` chooses it; the objective's first is the default).
With ``extends: <name>`` (another recipe of the same objective) it goes over that recipe's layer,
so a variant says only what it changes.
Files rather than dicts in code, so a recipe can be read, diffed and listed (``pivf config recipes``)
without reading the objective's source.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Recipe", "read_recipes"]


@dataclass(frozen=True)
class Recipe:
    name: str
    objective: str
    description: str
    layer: dict[str, Any]
    extends: str | None = None


def read_recipes(folder: Path, objective: str, names: Sequence[str]) -> dict[str, Recipe]:
    """The recipes ``folder/<objective>-<name>.yaml`` of ``names``, in that order (the first is the default)."""
    recipes = {}
    for name in names:
        text = yaml.safe_load((folder / f"{objective}-{name}.yaml").read_text(encoding="utf-8"))
        recipes[name] = Recipe(name, objective, " ".join(text["description"].split()), text["config"],
                               text.get("extends"))
    return recipes
