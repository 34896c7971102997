"""What every plugin class carries: a name, a one-line description and a params model."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pivf.core.errors import PluginParamsError


class PluginParams(BaseModel):
    """Base for plugin params: unknown fields are an error, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """Mixin for plugin classes. Subclasses set ``name``, ``description`` and ``Params``."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[PluginParams]] = PluginParams

    @classmethod
    def validate_params(cls, params: dict[str, Any] | PluginParams | None = None) -> PluginParams:
        """Validate raw params with this plugin's model; errors name the plugin and the field."""
        if isinstance(params, cls.Params):
            return params
        try:
            return cls.Params(**(params or {}))
        except ValidationError as exc:
            where = f"{cls.kind} '{cls.name}'"
            raise PluginParamsError(format_validation_error(exc, where, sorted(cls.Params.model_fields))) from None


def format_validation_error(exc: ValidationError, where: str, allowed: list[str] | None = None) -> str:
    """One line per problem, naming the field; pydantic's own text spans several lines and a URL."""
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
        problems.append(f"{field}: {msg}")
    return f"{where}: " + "; ".join(problems)
