"""pivf: learn physics from video with swappable, differentiable physics plugins.

The Python API mirrors the CLI: ``pivf.physics("spring", k=4.0)``, ``pivf.integrator("euler",
substeps=5)``, ``pivf.decoder("spatial_transformer", ...)`` return configured plugin instances.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pivf.core.kernel.hookspecs import hookimpl
from pivf.core.kernel.registry import registry

if TYPE_CHECKING:
    from pivf.core.data.task import Task
    from pivf.core.kernel.integrator import Integrator
    from pivf.core.kernel.model import Decoder, Encoder
    from pivf.core.kernel.objective import Objective
    from pivf.core.kernel.physics import PhysicsSystem

__version__ = "0.1.0"
__all__ = ["__version__", "decoder", "encoder", "hookimpl", "integrator", "list_plugins", "objective", "physics",
           "task"]


def physics(name: str, **params: Any) -> PhysicsSystem[Any]:
    """A physics system (an ``nn.Module``) with validated params."""
    return registry().create("physics", name, **params)


def integrator(name: str, **options: Any) -> Integrator[Any]:
    """An integrator with validated options (e.g. ``substeps``)."""
    return registry().create("integrator", name, **options)


def decoder(name: str, **params: Any) -> Decoder[Any]:
    """A decoder (an ``nn.Module``) with validated params."""
    return registry().create("decoder", name, **params)


def encoder(name: str, **params: Any) -> Encoder[Any]:
    """An encoder (an ``nn.Module``) with validated params."""
    return registry().create("encoder", name, **params)


def objective(name: str, **params: Any) -> Objective[Any]:
    """A training objective with validated params (``input_steps``, ``pred_steps`` and its own)."""
    return registry().create("objective", name, **params)


def task(name: str, **params: Any) -> Task[Any]:
    """A dataset task (generator and renderer) with validated params."""
    return registry().create("task", name, **params)


def list_plugins(kind: str | None = None) -> list[dict[str, str]]:
    """The installed plugins, one dict per plugin, as ``pivf plugins --json`` prints them."""
    return [row.as_dict() for row in registry().rows(kind)]
