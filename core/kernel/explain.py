"""``pivf config show --explain``: each value of a resolved config with where it came from and what
it means, one line per field, grouped by section."""
from __future__ import annotations

import math
from typing import Any

import yaml
from pydantic import BaseModel

from pivf.core.kernel.config import PLUGIN_SECTIONS, ExperimentConfig

__all__ = ["explain", "settable"]

#: a value wider than this is cut, so the source and description stay in their columns
VALUE_WIDTH = 24


def settable(config: ExperimentConfig, sources: dict[str, str]) -> dict[str, Any]:
    """The config as ``config show`` prints it: every field a layer may set, without the derived
    copies (a run's config.yaml keeps those, as the record the plugins were built from)."""
    return {section: {field: value for field, value in fields.items()
                      if not sources.get(f"{section}.{field}", "").startswith("derived from ")}
            for section, fields in config.to_dict().items()}


def explain(config: ExperimentConfig, sources: dict[str, str]) -> str:
    """One line per field: name, value, source and description, under a line per section."""
    rows = [(section, [(field, flow(value), sources[f"{section}.{field}"], describe(config, section, field))
                       for field, value in fields.items()])
            for section, fields in config.to_dict().items()]
    width = {column: max(len(row[column]) for _, lines in rows for row in lines) for column in (0, 1, 2)}
    width[1] = min(width[1], VALUE_WIDTH)
    lines = []
    for section, fields in rows:
        lines.append(f"{section}:")
        lines.extend(f"  {field:<{width[0]}}  {cut(value):<{width[1]}}  {source:<{width[2]}}  {description}".rstrip()
                     for field, value, source, description in fields)
    return "\n".join(lines)


def flow(value: Any) -> str:
    """A value as one line of YAML: ``null``, ``[64, 64]``, ``{}``."""
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip().removesuffix("\n...").strip()


def cut(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 1] + "…"


def describe(config: ExperimentConfig, section: str, field: str) -> str:
    """The field's description: from the core section's model, or from the chosen plugin's params
    model (a plugin section's ``name`` is described by the plugin itself)."""
    from pivf.core.kernel.registry import registry

    model: type[BaseModel]
    if section in PLUGIN_SECTIONS:
        plugin = registry().get(PLUGIN_SECTIONS[section], getattr(config, section).name)
        if field == "name":
            return f"{section} plugin: {plugin.description}"
        model = plugin.Params
    else:
        model = type(getattr(config, section))
    return model.model_fields[field].description or ""
