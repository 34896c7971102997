"""Entry-point discovery and lookup by name.

Every plugin, built-in or third-party, is a module under the ``pivf`` entry-point group. Loading is
forgiving: a third-party module that fails to import is recorded as broken (with the reason) and
warned about, and everything else keeps working. Set ``PIVF_DISABLE_PLUGIN_AUTOLOAD=1`` to load only
the plugins that ship with pivf itself: modules under ``pivf.plugins`` registered by the distribution
named pivf (a stray dist-info that merely calls itself pivf neither counts as built-in nor hides the
real one).
"""
from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from typing import Any

import pluggy

from pivf.core import hookspecs
from pivf.core.errors import PluginConflictError, UnknownPluginError
from pivf.core.plugin import Plugin

DISABLE_AUTOLOAD_ENV = "PIVF_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_DISTRIBUTION = "pivf"
BUILTIN_PACKAGE = "pivf.plugins."


class PluginLoadWarning(UserWarning):
    """A third-party plugin could not be loaded; the rest of pivf still works."""


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``pivf plugins``."""

    kind: str
    name: str
    description: str
    distribution: str
    version: str
    status: str  # "ok", "broken" or "conflict"
    error: str = ""
    cls: type[Plugin] | None = None

    def as_dict(self) -> dict[str, str]:
        row = {k: getattr(self, k) for k in ("kind", "name", "description", "distribution", "version", "status")}
        if self.error:
            row["error"] = self.error
        return row


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


class Registry:
    """All plugins found through entry points, indexed by kind and name."""

    def __init__(self, autoload_third_party: bool | None = None) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.autoload_third_party = not _autoload_disabled() if autoload_third_party is None else autoload_third_party
        self._rows: list[PluginInfo] = []
        self._by_key: dict[tuple[str, str], list[PluginInfo]] = {}
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        seen: set[str] = set()
        for ep in _entry_points():
            dist, version = _distribution_of(ep)
            if not _is_builtin(ep, dist) and not self.autoload_third_party:
                continue
            if ep.value in seen:  # the same module listed twice (e.g. an editable and a regular install)
                continue
            seen.add(ep.value)
            try:
                module = ep.load()
                self.manager.register(module, name=ep.value)
                rows = list(self._collect(module, dist, version))
            except Exception as exc:  # noqa: BLE001 - any failure in foreign code must not break pivf
                reason = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"pivf plugin '{ep.name}' from {dist} failed to load: {reason}", PluginLoadWarning, stacklevel=2)
                self._rows.append(PluginInfo("?", ep.name, f"entry point {ep.value}", dist, version, "broken", reason))
                continue
            for row in rows:
                self._by_key.setdefault((row.kind, row.name), []).append(row)
        for rows in self._by_key.values():
            if len(rows) > 1:
                rows[:] = [PluginInfo(**{**r.__dict__, "status": "conflict"}) for r in rows]
            self._rows.extend(rows)

    def _collect(self, module: Any, dist: str, version: str):
        for kind, hook_name in hookspecs.HOOK_OF_KIND.items():
            hook = getattr(module, hook_name, None)
            if hook is None:
                continue
            for cls in hook():
                if not (isinstance(cls, type) and issubclass(cls, Plugin) and cls.name):
                    raise TypeError(f"{hook_name} returned {cls!r}, not a named pivf plugin class")
                if cls.kind != kind:
                    raise TypeError(f"{cls.__name__} is a {cls.kind or 'plugin'} but was returned by {hook_name}")
                yield PluginInfo(kind, cls.name, cls.description, dist, version, "ok", cls=cls)

    def rows(self, kind: str | None = None) -> list[PluginInfo]:
        order = list(hookspecs.HOOK_OF_KIND)
        rows = [r for r in self._rows if kind is None or r.kind == kind]
        return sorted(rows, key=lambda r: (order.index(r.kind) if r.kind in order else len(order), r.name))

    def names(self, kind: str) -> list[str]:
        return sorted({r.name for r in self._rows if r.kind == kind and r.status != "broken"})

    def get(self, kind: str, name: str) -> type[Plugin]:
        """The plugin class of that kind and name, or a one-line error listing the known names."""
        if kind not in hookspecs.HOOK_OF_KIND:
            raise UnknownPluginError(f"unknown plugin kind '{kind}'; known kinds: {', '.join(hookspecs.HOOK_OF_KIND)}")
        rows = self._by_key.get((kind, name))
        if not rows:
            known = self.names(kind)
            hint = difflib.get_close_matches(name, known, n=1)
            did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise UnknownPluginError(f"unknown {kind} '{name}'{did_you_mean}; available: {', '.join(known) or 'none'}")
        if len(rows) > 1:
            providers = " and ".join(sorted(f"{r.distribution} {r.version}".strip() for r in rows))
            raise PluginConflictError(f"{kind} '{name}' is provided by both {providers}; uninstall one of them")
        assert rows[0].cls is not None
        return rows[0].cls

    def create(self, kind: str, name: str, **params: Any) -> Plugin:
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
