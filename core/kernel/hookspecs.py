"""The whole plugin contract of pivf.

A plugin is a module registered under the ``pivf`` entry-point group that implements any of these
hooks with ``@pivf.hookimpl``. Each hook returns a list of plugin *classes*; every class carries a
unique ``name``, a one-line ``description`` and a pydantic ``Params`` model (see ``pivf.core.kernel.plugin``).
"""
from __future__ import annotations

import pluggy

__all__ = ["BASE_OF_KIND", "ENTRY_POINT_GROUP", "HOOK_OF_KIND", "PROJECT", "hookimpl"]

PROJECT = "pivf"
ENTRY_POINT_GROUP = "pivf"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def pivf_physics() -> list[type]:
    """Physics systems (subclasses of ``pivf.core.kernel.physics.PhysicsSystem``): the equations of motion."""


@hookspec
def pivf_integrators() -> list[type]:
    """Integrators (subclasses of ``pivf.core.kernel.integrator.Integrator``) that roll a physics system forward."""


@hookspec
def pivf_decoders() -> list[type]:
    """Decoders (``pivf.core.kernel.model.Decoder``): render a state (positions or latent q) into frames."""


@hookspec
def pivf_encoders() -> list[type]:
    """Encoders (``pivf.core.kernel.model.Encoder``): infer the initial state from the first frames."""


@hookspec
def pivf_objectives() -> list[type]:
    """Objectives (``pivf.core.kernel.objective.Objective``): what is predicted, how it is scored and trained."""


@hookspec
def pivf_tasks() -> list[type]:
    """Dataset tasks (``pivf.core.data.task.Task``): generate and render sequences for ``pivf data generate``."""


#: hook name for each plugin kind, in the order ``pivf plugins`` lists them
HOOK_OF_KIND: dict[str, str] = {
    "physics": "pivf_physics",
    "integrator": "pivf_integrators",
    "decoder": "pivf_decoders",
    "encoder": "pivf_encoders",
    "objective": "pivf_objectives",
    "task": "pivf_tasks",
}

#: the base class each kind's plugins subclass, by name: the registry finds it among a plugin class's
#: ancestors, so it never imports the modules that define the bases (they look plugins up in it)
BASE_OF_KIND: dict[str, str] = {
    "physics": "pivf.core.kernel.physics.PhysicsSystem",
    "integrator": "pivf.core.kernel.integrator.Integrator",
    "decoder": "pivf.core.kernel.model.Decoder",
    "encoder": "pivf.core.kernel.model.Encoder",
    "objective": "pivf.core.kernel.objective.Objective",
    "task": "pivf.core.data.task.Task",
}
