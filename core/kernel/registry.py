"""Entry-point discovery through pluggy, checks at load time, and lookup by name.

Every plugin, built-in or third-party, is a module under the ``pivf`` entry-point group. Each module
is registered with a pluggy ``PluginManager`` (which checks its hook signatures against
``core/kernel/hookspecs.py``) and its hooks are called through the manager. Loading is forgiving but
strict about contracts: a module that fails to import, implements a hook that does not exist (a
misspelling), leaves ``@pivf.hookimpl`` off, or returns a class that breaks its kind's contract
(wrong base class, a params model that is not ``PluginParams`` or whose defaults violate its own
fields, a name that is not plain, no equations of motion, ...) becomes a ``broken`` row with the
reason, warned about in one line, and everything else keeps working. Whatever a plugin's code raises
while it loads is contained the same way, ``SystemExit`` and ``KeyboardInterrupt`` included (only a
Ctrl-C the user presses meanwhile still stops pivf). An error about a name that failed to load, or
that one of the settings below hid, says so.

Which third-party plugins load (built-ins always do, unless named in the deny list):

- ``PIVF_DISABLE_PLUGIN_AUTOLOAD=1``: none; only the plugins that ship with pivf (modules under
  ``pivf.plugins`` registered by the distribution named pivf: a stray dist-info that merely calls
  itself pivf neither counts as built-in nor hides the real one).
- ``PIVF_PLUGINS=a,b``: only these (entry-point or distribution names).
- ``PIVF_DISABLE_PLUGINS=a,b``: not these, built-ins included; this settles a name clash.
"""
from __future__ import annotations

import difflib
import os
import signal
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, distributions
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, Literal, overload

import pluggy

from pivf.core.kernel import hookspecs
from pivf.core.kernel.errors import PluginConflictError, UnknownPluginError
from pivf.core.kernel.plugin import Plugin, contract_problems

if TYPE_CHECKING:
    from pivf.core.data.task import Task
    from pivf.core.kernel.integrator import Integrator
    from pivf.core.kernel.model import Decoder, Encoder
    from pivf.core.kernel.objective import Objective
    from pivf.core.kernel.physics import PhysicsSystem

__all__ = ["ALLOW_ENV", "DENY_ENV", "DISABLE_AUTOLOAD_ENV", "PluginLoadWarning", "Registry", "registry",
           "reset_registry"]

DISABLE_AUTOLOAD_ENV = "PIVF_DISABLE_PLUGIN_AUTOLOAD"
ALLOW_ENV = "PIVF_PLUGINS"
DENY_ENV = "PIVF_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "pivf"
BUILTIN_PACKAGE = "pivf.plugins."
#: kind of a row whose module failed before it could say what it provides
UNKNOWN_KIND = "?"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the rest of pivf still works."""


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``pivf plugins``."""

    kind: str
    name: str
    description: str
    distribution: str
    version: str
    status: str  # "ok", "broken", "conflict", "disabled" or "unavailable"
    error: str = ""
    cls: type[Plugin] | None = None

    def as_dict(self) -> dict[str, str]:
        row = {k: getattr(self, k) for k in ("kind", "name", "description", "distribution", "version", "status")}
        if self.error:
            row["error"] = self.error
        return row


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable, "").strip()
    return {name.strip() for name in value.split(",") if name.strip()} if value else None


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown", ""
    return dist.metadata["Name"], dist.version


def _entry_points() -> list[EntryPoint]:
    """The ``pivf`` entry points of every installed distribution, by name. ``entry_points()`` keeps
    one distribution per name, so a dist-info called pivf earlier on the path would hide pivf's own."""
    found = [ep for dist in distributions() for ep in dist.entry_points if ep.group == hookspecs.ENTRY_POINT_GROUP]
    return sorted(found, key=lambda e: e.name)


def _is_builtin(ep: EntryPoint, dist: str) -> bool:
    return dist == BUILTIN_DISTRIBUTION and ep.value.startswith(BUILTIN_PACKAGE)


def kind_base(cls: Any, kind: str) -> type[Plugin] | None:
    """``kind``'s base class when ``cls`` subclasses it, else None (found by name among its ancestors)."""
    ancestors = cls.__mro__ if isinstance(cls, type) else ()
    return next((c for c in ancestors if f"{c.__module__}.{c.__qualname__}" == hookspecs.BASE_OF_KIND[kind]), None)


def _hook_problems(module: ModuleType, manager: pluggy.PluginManager) -> list[str]:
    """Hooks of ``module`` that pivf would never call: unknown names, and known names left unmarked."""
    problems = []
    known = list(hookspecs.HOOK_OF_KIND.values())
    for caller in manager.get_hookcallers(module) or []:
        if not caller.has_spec():
            hint = difflib.get_close_matches(caller.name, known, n=1)
            problems.append(f"unknown hook '{caller.name}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    marker = f"{hookspecs.PROJECT}_impl"
    for attribute in dir(module):
        function = getattr(module, attribute, None)
        if callable(function) and not hasattr(function, marker) and (
                attribute in known or difflib.get_close_matches(attribute, known, n=1, cutoff=0.85)):
            problems.append(f"'{attribute}' is not marked with @pivf.hookimpl, so it is never called")
    return problems


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _setting(variable: str) -> str:
    return f"{variable}={os.environ.get(variable, '').strip()}"


@dataclass(frozen=True)
class _Origin:
    """Where a module of hooks comes from: what its rows say about it."""

    label: str  # the entry point's name, or the module's
    distribution: str
    version: str
    source: str  # "entry point <value>" or "module <name>"

    def broken(self, kind: str, reason: str, name: object = "") -> PluginInfo:
        """A broken row, warned about in one line; named after the class when it has a usable name."""
        name = _one_line(name) if isinstance(name, str) and name.strip() else self.label
        reason = _one_line(reason)
        warnings.warn(f"pivf plugin '{name}' from {self.distribution} failed to load: {reason}", PluginLoadWarning,
                      stacklevel=2)
        return PluginInfo(kind, name, self.source, self.distribution, self.version, "broken", reason)


class _Containment:
    """Keeps whatever plugin code raises while plugins load (``SystemExit``, ``KeyboardInterrupt``,
    ``GeneratorExit`` too) from ending pivf, while a Ctrl-C the user presses meanwhile still does. A
    KeyboardInterrupt raised by a plugin looks like one from the keyboard, so Python's own SIGINT
    handler is watched (in the main thread, where it runs)."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> _Containment:
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler and threading.current_thread() is threading.main_thread():
            def note(signum: int, frame: FrameType | None) -> None:
                self.pressed = True
                signal.default_int_handler(signum, frame)

            signal.signal(signal.SIGINT, note)
            self._previous = previous
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self.pressed and kind is None:  # a plugin swallowed the user's Ctrl-C
            raise KeyboardInterrupt

    def reason(self, exc: BaseException) -> str:
        """What plugin code raised, in one line; after a Ctrl-C of the user's, pivf stops instead."""
        if self.pressed:
            raise KeyboardInterrupt from exc
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001 - its message is plugin code too
            message = ""
        return _one_line(f"{type(exc).__name__}: {message}" if message.strip() else type(exc).__name__)


def _class_row(cls: Any, kind: str, origin: _Origin, contained: _Containment) -> PluginInfo:
    """The row of one class a hook returned: ok, unavailable with its reason, or broken."""
    title, name = "a class", ""
    try:
        title = str(getattr(cls, "__qualname__", None) or repr(cls))
        name = getattr(cls, "name", "")
        base = kind_base(cls, kind)
        problems = contract_problems(cls, base) if base else [f"is not a subclass of {hookspecs.BASE_OF_KIND[kind]}"]
    except BaseException as exc:  # noqa: BLE001 - its declarations are plugin code (a default factory, ...)
        return origin.broken(kind, f"{title} raised {contained.reason(exc)} while it was checked", name)
    if problems:
        return origin.broken(kind, f"{title} " + "; ".join(problems), name)
    try:
        reason = cls.unavailable()
    except BaseException as exc:  # noqa: BLE001
        return origin.broken(kind, f"{title}.unavailable() raised {contained.reason(exc)}", name)
    if reason is not None and not isinstance(reason, str):
        return origin.broken(kind, f"{title}.unavailable() returned a {type(reason).__name__}, not a reason or None",
                             name)
    status, error = ("unavailable", _one_line(reason)) if reason else ("ok", "")
    return PluginInfo(kind, name, cls.description, origin.distribution, origin.version, status, error, cls=cls)


class Registry:
    """All plugins found through entry points, indexed by kind and name."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.autoload_third_party = not _autoload_disabled()
        self.allowed, self.denied = _names_from_env(ALLOW_ENV), _names_from_env(DENY_ENV) or set()
        self._disabled: list[PluginInfo] = []  # left out by the deny list
        self._hidden: list[tuple[str, str, str]] = []  # (entry point, distribution, the setting that hid it)
        self._by_key: dict[tuple[str, str], list[PluginInfo]] = {}
        self._load_entry_points()

    # --- loading ---------------------------------------------------------------------------------
    def _hidden_by(self, ep: EntryPoint, dist: str) -> str | None:
        """The setting that keeps this entry point from loading, or None."""
        if {ep.name, dist} & self.denied:
            return _setting(DENY_ENV)
        if _is_builtin(ep, dist):
            return None
        if not self.autoload_third_party:
            return _setting(DISABLE_AUTOLOAD_ENV)
        return None if self.allowed is None or {ep.name, dist} & self.allowed else _setting(ALLOW_ENV)

    def _load_entry_points(self) -> None:
        seen: set[str] = set()
        loaded: list[PluginInfo] = []
        with _Containment() as contained:
            for ep in _entry_points():
                dist, version = _distribution_of(ep)
                if ep.value in seen:  # the same module listed twice (e.g. an editable and a regular install)
                    continue
                seen.add(ep.value)
                hidden_by = self._hidden_by(ep, dist)
                if hidden_by is None:
                    origin = _Origin(ep.name, dist, version, f"entry point {ep.value}")
                    loaded.extend(self._load_entry_point(ep, origin, contained))
                    continue
                self._hidden.append((ep.name, dist, hidden_by))
                if {ep.name, dist} & self.denied:
                    self._disabled.append(PluginInfo(UNKNOWN_KIND, ep.name, f"entry point {ep.value}", dist, version,
                                                     "disabled", f"named in {DENY_ENV}"))
        self._index(loaded)

    def add_module(self, module: ModuleType, distribution: str, version: str = "") -> None:
        """Register a module of hooks that no entry point names (``pivf.testing.registered``)."""
        with _Containment() as contained:
            rows = self._register(module, _Origin(module.__name__, distribution, version, f"module {module.__name__}"),
                                  contained)
        self._index(rows)

    def _index(self, rows: list[PluginInfo]) -> None:
        """Add rows; several working providers of one kind and name are all marked as a conflict."""
        for row in rows:
            self._by_key.setdefault((row.kind, row.name), []).append(row)
        for key in {(row.kind, row.name) for row in rows}:
            group = self._by_key[key]
            if key[0] != UNKNOWN_KIND and len([r for r in group if r.status in ("ok", "conflict")]) > 1:
                group[:] = [replace(r, status="conflict") if r.status == "ok" else r for r in group]

    def _load_entry_point(self, ep: EntryPoint, origin: _Origin, contained: _Containment) -> list[PluginInfo]:
        try:
            module = ep.load()
        except BaseException as exc:  # noqa: BLE001 - whatever a plugin does on import must not end pivf
            return [origin.broken(UNKNOWN_KIND, contained.reason(exc))]
        return self._register(module, origin, contained)

    def _register(self, module: ModuleType, origin: _Origin, contained: _Containment) -> list[PluginInfo]:
        """The rows of one module of hooks: one per class its hooks return, or one broken row."""
        try:
            self.manager.register(module, name=origin.source)
            problems = _hook_problems(module, self.manager)
        except BaseException as exc:  # noqa: BLE001 - a hook whose arguments the spec lacks, a module __dir__
            problems = [contained.reason(exc)]
        if problems:
            if self.manager.get_plugin(origin.source) is not None:
                self.manager.unregister(name=origin.source)
            return [origin.broken(UNKNOWN_KIND, "; ".join(problems))]
        rows = [row for kind, hook_name in hookspecs.HOOK_OF_KIND.items()
                for row in self._hook_rows(module, kind, hook_name, origin, contained)]
        return rows or [origin.broken(UNKNOWN_KIND, "implements no pivf hook (see pivf/core/kernel/hookspecs.py)")]

    def _hook_rows(self, module: ModuleType, kind: str, hook_name: str, origin: _Origin,
                   contained: _Containment) -> list[PluginInfo]:
        """The rows of the classes one hook of ``module`` returns, or the hook's broken row."""
        others = [plugin for plugin in self.manager.get_plugins() if plugin is not module]
        call = self.manager.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            returned = [cls for classes in call() for cls in classes]
        except BaseException as exc:  # noqa: BLE001
            return [origin.broken(kind, f"{hook_name}() raised {contained.reason(exc)}")]
        return [_class_row(cls, kind, origin, contained) for cls in returned]

    # --- lookup ----------------------------------------------------------------------------------
    def rows(self, kind: str | None = None) -> list[PluginInfo]:
        """Rows of ``kind`` (with the broken rows whose kind is unknown: they may be of it), or all."""
        order = list(hookspecs.HOOK_OF_KIND)
        rows = [r for r in self._all_rows() if kind is None or r.kind == kind
                or (r.kind == UNKNOWN_KIND and r.status == "broken")]
        return sorted(rows, key=lambda r: (order.index(r.kind) if r.kind in order else len(order), r.name))

    def _all_rows(self) -> list[PluginInfo]:
        return [row for group in self._by_key.values() for row in group] + self._disabled

    def names(self, kind: str) -> list[str]:
        return sorted({r.name for r in self._all_rows() if r.kind == kind and r.status in ("ok", "conflict")})

    @overload
    def get(self, kind: Literal["physics"], name: str) -> type[PhysicsSystem[Any]]: ...
    @overload
    def get(self, kind: Literal["integrator"], name: str) -> type[Integrator[Any]]: ...
    @overload
    def get(self, kind: Literal["encoder"], name: str) -> type[Encoder[Any]]: ...
    @overload
    def get(self, kind: Literal["decoder"], name: str) -> type[Decoder[Any]]: ...
    @overload
    def get(self, kind: Literal["objective"], name: str) -> type[Objective[Any]]: ...
    @overload
    def get(self, kind: Literal["task"], name: str) -> type[Task[Any]]: ...
    @overload
    def get(self, kind: str, name: str) -> type[Plugin[Any]]: ...

    def get(self, kind: str, name: str) -> type[Plugin[Any]]:
        """The plugin class of that kind and name, or a one-line error saying why not."""
        if kind not in hookspecs.HOOK_OF_KIND:
            raise UnknownPluginError(f"unknown plugin kind '{kind}'; known kinds: {', '.join(hookspecs.HOOK_OF_KIND)}")
        rows = [r for r in self._by_key.get((kind, name), []) if r.status not in ("broken", "unavailable")]
        unavailable = [r for r in self._by_key.get((kind, name), []) if r.status == "unavailable"]
        if not rows and unavailable:
            raise UnknownPluginError(f"{kind} '{name}' is unavailable here: {unavailable[0].error}")
        if not rows:
            raise UnknownPluginError(self._why_missing(kind, name))
        if len(rows) > 1:
            providers = " and ".join(sorted(f"{r.distribution} {r.version}".strip() for r in rows))
            raise PluginConflictError(f"{kind} '{name}' is provided by both {providers}; uninstall one, or leave one "
                                      f"out with {DENY_ENV}=<entry point or distribution name>")
        assert rows[0].cls is not None
        return rows[0].cls

    def _why_missing(self, kind: str, name: str) -> str:
        known = self.names(kind)
        available = f"available: {', '.join(known) or 'none'}"
        failed = [r for r in self._by_key.get((kind, name), []) if r.status == "broken"]
        if failed:
            return f"{kind} '{name}' from {failed[0].distribution} failed to load: {failed[0].error}; {available}"
        hidden = self._hidden_hint(name)
        suspects = [r for r in self._all_rows() if r.kind in (kind, UNKNOWN_KIND) and r.status == "broken"]
        if suspects:
            modules = "; ".join(f"'{r.name}' from {r.distribution} ({r.error})" for r in suspects)
            return (f"unknown {kind} '{name}'{hidden}; plugins that failed to load, which may provide it: {modules}; "
                    f"{available}")
        hint = difflib.get_close_matches(name, known, n=1)
        did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown {kind} '{name}'{did_you_mean}{hidden}; {available}"

    def _hidden_hint(self, name: str) -> str:
        """What the settings hid that may provide ``name``: an entry point or distribution of that name
        for certain, else how many plugins each setting hid (their classes are unknown unloaded)."""
        for entry_point, dist, setting in self._hidden:
            if name in (entry_point, dist):
                return f"; the plugin '{entry_point}' from {dist} is hidden by {setting}"
        counts = Counter(setting for _, _, setting in self._hidden)
        return "".join(f"; {setting} hides {count} installed plugin{'' if count == 1 else 's'}, which may provide it"
                       for setting, count in counts.items())

    @overload
    def create(self, kind: Literal["physics"], name: str, **params: Any) -> PhysicsSystem[Any]: ...
    @overload
    def create(self, kind: Literal["integrator"], name: str, **params: Any) -> Integrator[Any]: ...
    @overload
    def create(self, kind: Literal["encoder"], name: str, **params: Any) -> Encoder[Any]: ...
    @overload
    def create(self, kind: Literal["decoder"], name: str, **params: Any) -> Decoder[Any]: ...
    @overload
    def create(self, kind: Literal["objective"], name: str, **params: Any) -> Objective[Any]: ...
    @overload
    def create(self, kind: Literal["task"], name: str, **params: Any) -> Task[Any]: ...
    @overload
    def create(self, kind: str, name: str, **params: Any) -> Plugin[Any]: ...

    def create(self, kind: str, name: str, **params: Any) -> Plugin[Any]:
        """A configured instance; params are validated by the plugin's own model."""
        cls = self.get(kind, name)
        return cls(cls.validate_params(params))


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


def reset_registry() -> None:
    """Forget the loaded plugins (tests that install packages or toggle autoloading need this)."""
    global _REGISTRY
    _REGISTRY = None
