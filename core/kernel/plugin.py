"""What every plugin class carries: a name, a one-line description, a params model, and the methods
its kind requires; ``contract_problems`` checks all of it when the plugin loads."""
from __future__ import annotations

import re
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from pivf.core.kernel.errors import PluginParamsError

__all__ = ["P", "Plugin", "PluginParams", "contract_problems", "format_validation_error"]

#: what a plugin name may hold: it names folders of runs and sweeps, config values and CLI flags
PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")


class PluginParams(BaseModel):
    """Base for plugin params: unknown fields are an error, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: fields that must hold one value in every config section whose params have them (the shape of
    #: a latent state the encoder, physics and decoder all read); checked when a config is resolved
    shared_fields: ClassVar[tuple[str, ...]] = ()


P = TypeVar("P", bound=PluginParams)


class Plugin(Generic[P]):
    """Base of every kind's base class. A plugin names its params model as the type argument,
    ``class Spring(PhysicsSystem[SpringParams])``, so ``self.params.k`` type-checks; that argument
    becomes ``Params``, the model its params are validated with, unless the class sets ``Params``."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[PluginParams]] = PluginParams
    #: methods a plugin of this kind defines: one of these groups, every method in it overridden
    required_methods: ClassVar[tuple[tuple[str, ...], ...]] = ()
    params: P

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _params_argument(cls)
        if declared is not None and "Params" not in cls.__dict__:
            cls.Params = declared

    def __init__(self, params: P | dict[str, Any] | None = None) -> None:
        super().__init__()  # nn.Module's, for the kinds that are modules
        self.params = self.validate_params(params)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this plugin cannot run on this machine (an optional library or driver missing), or None.
        Such a plugin is listed with the reason instead of failing to load."""
        return None

    @classmethod
    def validate_params(cls, params: PluginParams | dict[str, Any] | None = None) -> P:
        """Validate raw params with this plugin's model; errors name the plugin and the field."""
        if isinstance(params, cls.Params):
            return cast(P, params)
        if isinstance(params, PluginParams):
            params = params.model_dump()
        try:
            return cast(P, cls.Params(**(params or {})))
        except ValidationError as exc:
            where = f"{cls.kind} '{cls.name}'"
            raise PluginParamsError(format_validation_error(exc, where, sorted(cls.Params.model_fields))) from None


def _params_argument(cls: type) -> type[PluginParams] | None:
    """The params model ``cls`` gives as its base's type argument (``Base[SomeParams]``), if any."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Plugin):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, PluginParams):
                    return arg
    return None


def contract_problems(cls: Any, base: type[Plugin]) -> list[str]:
    """What keeps ``cls`` from working as a plugin of ``base``'s kind, one phrase each."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return [f"is not a subclass of {base.__module__}.{base.__qualname__}"]
    problems = []
    if not cls.name:
        problems.append("has no name")
    elif not (isinstance(cls.name, str) and PLAIN_NAME.fullmatch(cls.name)):
        problems.append(f"name {cls.name!r} is not plain (letters, digits and _ only)")
    if not isinstance(cls.description, str) or not cls.description or "\n" in cls.description:
        problems.append("needs a one-line description")
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, PluginParams)):
        problems.append("Params must subclass pivf.core.kernel.plugin.PluginParams (which refuses unknown fields)")
    else:
        problems.extend(default_problems(cls.Params))
    groups = base.required_methods
    if groups and not any(all(getattr(cls, m) is not getattr(base, m) for m in group) for group in groups):
        problems.append("defines none of " + " or ".join("/".join(group) for group in groups))
    return problems


def default_problems(params: type[PluginParams]) -> list[str]:
    """The defaults of ``params`` that violate their own fields (pydantic does not check defaults)."""
    defaults = {name: field.get_default(call_default_factory=True) for name, field in params.model_fields.items()
                if field.default is not PydanticUndefined or field.default_factory is not None}
    try:
        params.model_validate(defaults)
    except ValidationError as exc:
        return [f"the default of {'.'.join(str(part) for part in err['loc']) or 'Params'} is invalid: "
                f"{err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors(include_url=False) if err["type"] != "missing"]
    return []


def format_validation_error(exc: ValidationError, where: str, allowed: list[str] | None = None) -> str:
    """One line per problem, naming the field; pydantic's own text spans several lines and a URL."""
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
        problems.append(f"{field}: {msg}" if field else msg)
    return f"{where}: " + "; ".join(problems)
