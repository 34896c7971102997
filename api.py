"""The one import for plugin authors: everything a plugin module needs from pivf, and nothing else.

    from pivf.api import ObjectParams, PhysicsSystem, hookimpl, log_parameter

pivf's own plugins import from here alone, as a third-party package would; what is not here is
pivf's inside and may change. The names come in groups:

- marking hooks: ``hookimpl`` (``@hookimpl def pivf_physics(): return [MySystem]``).
- the contracts, one base class per kind with its params model: ``PhysicsSystem`` (``ObjectParams``
  for systems of objects, ``StateKind``), ``Integrator`` (``IntegratorParams``; ``Flow`` is what
  its ``step`` moves: the physics, or the physics under one interval's input), ``Encoder`` /
  ``Decoder`` (``EncoderOutput``, ``Backward`` for ``refine_velocity``), ``Objective``
  (``ObjectiveParams``; ``Pipeline`` / ``PipelineOutput`` are what it trains and scores), ``Task``
  (``TaskParams``, ``Trajectory``; ``BallTask`` draws PAIG's balls), all on ``PluginParams``.
- errors a plugin raises for a user's mistake, printed as one line: ``PivfUserError``, ``ConfigError``
  (a setting), ``DataError`` (a file or data set); ``UnknownPluginError`` is what asking for an
  unknown name raises.
- physics helpers: ``log_parameter`` (a positive constant, learned as its log), ``floored_length``,
  ``energy_gradient``; integrators: ``frame_intervals``.
- task helpers: ``with_default``, ``MAX_SIMULATION_SUBSTEPS``, ``deep_merge`` (presets over presets),
  seeded draws (``uniform``, ``normal``, ``signs``, ``unit_vectors``) and drawing (``draw_discs``,
  ``sprite_patches``, ``splat_``, ``to_uint8``).
- network helpers: ``mlp``, ``glorot_init``, ``full_precision``; the velocity fit encoders may run
  through the physics: ``fit_velocity``, ``largest_step_last_sign``.
- objective helpers: ``as_float`` (stored uint8 video → model input), ``frame_sse``, ``state_sse``,
  ``inference``, ``rollout_frames``, ``predict``, ``sample``; ``Recipe`` and ``read_recipes`` for an
  objective's recipe files.

A plugin package's tests have their checks in ``pivf.testing``; ``pivf.physics(...)`` and the other
top-level functions make plugins by name.
"""
from __future__ import annotations

from pivf.core.data.balls import BallTask, BallTaskParams
from pivf.core.data.frames import as_float
from pivf.core.data.render import draw_discs, splat_, sprite_patches, to_uint8
from pivf.core.data.sampling import normal, signs, uniform, unit_vectors
from pivf.core.data.task import MAX_SIMULATION_SUBSTEPS, Task, TaskParams, Trajectory, with_default
from pivf.core.kernel.config import deep_merge
from pivf.core.kernel.errors import ConfigError, DataError, PivfUserError, UnknownPluginError
from pivf.core.kernel.hookspecs import hookimpl
from pivf.core.kernel.inference import inference, predict, rollout_frames, sample
from pivf.core.kernel.integrator import Integrator, IntegratorParams, frame_intervals
from pivf.core.kernel.losses import frame_sse, state_sse
from pivf.core.kernel.model import Decoder, Encoder, EncoderOutput
from pivf.core.kernel.nn import full_precision, glorot_init, mlp
from pivf.core.kernel.objective import Objective, ObjectiveParams
from pivf.core.kernel.physics import (
    Flow,
    ObjectParams,
    PhysicsSystem,
    StateKind,
    energy_gradient,
    floored_length,
    log_parameter,
)
from pivf.core.kernel.pipeline import Pipeline, PipelineOutput
from pivf.core.kernel.plugin import PluginParams
from pivf.core.kernel.recipes import Recipe, read_recipes
from pivf.core.kernel.units import Quantity
from pivf.core.kernel.velocity_fit import Backward, fit_velocity, largest_step_last_sign
from pivf.core.kernel.vpt import VPT_THRESHOLD, median_time, prediction_time, still_time, valid_prediction_time

__all__ = [
    # marking hooks
    "hookimpl",
    # the contracts
    "BallTask", "BallTaskParams", "Backward", "Decoder", "Encoder", "EncoderOutput", "Flow", "Integrator",
    "IntegratorParams", "ObjectParams", "Objective", "ObjectiveParams", "PhysicsSystem", "Pipeline", "PipelineOutput",
    "PluginParams", "Quantity", "Recipe", "StateKind", "Task", "TaskParams", "Trajectory",
    # errors
    "ConfigError", "DataError", "PivfUserError", "UnknownPluginError",
    # physics and integrator helpers
    "energy_gradient", "floored_length", "frame_intervals", "log_parameter",
    # task helpers
    "MAX_SIMULATION_SUBSTEPS", "deep_merge", "draw_discs", "normal", "signs", "splat_", "sprite_patches", "to_uint8",
    "uniform", "unit_vectors", "with_default",
    # network helpers
    "fit_velocity", "full_precision", "glorot_init", "largest_step_last_sign", "mlp",
    # objective helpers
    "as_float", "frame_sse", "inference", "predict", "read_recipes", "rollout_frames", "sample", "state_sse",
    "VPT_THRESHOLD", "median_time", "prediction_time", "still_time", "valid_prediction_time",
]
