"""The contract of a training objective: which frames a model sees, what it predicts, how that is
scored, and what it asks of the other plugins.

An objective is a plugin of kind ``objective``, returned by a module's ``pivf_objectives`` hook and
chosen with ``--objective NAME`` (config section ``objective:``, its params beside ``name``). The
trainer owns the loop (optimiser, checkpoints, time budget, logging); the objective owns the loss::

    class MyParams(ObjectiveParams):      # input_steps and pred_steps come from the data
        weight: float = Field(1.0, ge=0)

    class MyObjective(Objective):
        name = "mine"
        description = "one line for `pivf plugins`"
        Params = MyParams
        states = ("objects",)             # the state kinds of physics it can train
        headline = ("pred",)              # evaluate()'s keys that summarise a run

        def losses(self, pipeline, frames):
            out = pipeline(frames[:, : self.train_length], steps=self.pred_steps)
            ...
            return {"pred": pred, "loss": pred}

Video recorded under inputs (an actuated system) comes with its controls: the trainer and
``evaluate`` then call ``losses(pipeline, frames, controls)``, and the objective passes them to the
rollout (``pipeline(frames, steps, controls=controls)``); without controls the third argument is
left out, so an objective for unactuated video need not take it.

What it may override: ``training_losses`` (a schedule over steps), ``after_step`` (re-initialise
parts of the model), ``milestones`` (its stages, for the run's verdict), ``evaluate`` and ``report``
(metrics that are not means, their names in metrics.json), ``implied_params`` (params it decides for
the encoder, decoder or physics), ``legacy_params`` (its settings in configs older than objectives),
``state_dict``/``load_state_dict`` (state that must survive a resume) and ``recipes`` (named config
layers, ``--recipe NAME``, that train it well: YAML files beside the plugin, core/kernel/recipes.py).
"""
from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import Field
from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.kernel.inference import inference
from pivf.core.kernel.physics import StateKind
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.kernel.plugin import Plugin, PluginParams
from pivf.core.kernel.recipes import Recipe

__all__ = ["Objective", "ObjectiveParams"]


class ObjectiveParams(PluginParams):
    """Params every objective has; both are filled in from the data section."""

    input_steps: int = Field(4, ge=1, description="frames the encoder sees (data.input_steps)")
    pred_steps: int = Field(6, ge=1, description="frames predicted and trained on (data.pred_steps)")


OP = TypeVar("OP", bound=ObjectiveParams)


class Objective(Plugin[OP]):
    """Base class of objective plugins. ``losses`` returns named scalar tensors; ``"loss"`` is what
    training minimises."""

    kind: ClassVar[str] = "objective"
    required_methods = (("losses",),)
    Params = ObjectiveParams
    #: state kinds of the physics this objective can train (see ``PhysicsSystem.state``)
    states: ClassVar[tuple[StateKind, ...]] = ("objects",)
    #: keys of ``evaluate``'s result that summarise a run (``pivf compare`` charts them first)
    headline: ClassVar[tuple[str, ...]] = ()
    #: named config layers over the task preset (``training.recipe``), read from YAML files with
    #: ``read_recipes``; the first is the default
    recipes: ClassVar[dict[str, Recipe]] = {}

    def __init__(self, params: OP | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.input_steps: int = self.params.input_steps
        self.pred_steps: int = self.params.pred_steps

    @classmethod
    def implied_params(cls, params: Any) -> dict[str, Any]:
        """Params this objective decides for the other plugins (a plugin whose params model has the
        field gets the value), e.g. whether the encoder is variational."""
        return {}

    @classmethod
    def legacy_params(cls, config: dict[str, Any], chosen: bool) -> dict[str, Any] | None:
        """This objective's params from a config written before objectives were plugins, taking its
        old settings out of ``config`` (a copy, ``training`` a mapping) whether or not the run used
        it (``chosen``); None when the config has none of them."""
        return None

    @property
    def train_length(self) -> int:
        """Frames of a training sequence the objective uses."""
        return self.input_steps + self.pred_steps

    def batch_controls(self, controls: Tensor | None, rows: slice | Tensor = slice(None)) -> dict[str, Tensor]:
        """The keyword arguments that hand the ``rows`` of a split's controls (N, T, m), aligned with
        its frames, to ``losses``: the rollout starts at the last input frame, so its inputs start
        there too. Empty without controls, so an objective for unactuated video need not take them."""
        return {} if controls is None else {"controls": controls[rows, self.input_steps - 1:]}

    def losses(self, pipeline: Pipeline, frames: Tensor, controls: Tensor | None = None) -> dict[str, Tensor]:
        """Named losses of a batch; ``controls`` (B, ≥ steps, m), for video recorded under inputs, are
        what the pipeline's rollout runs under (``pipeline(frames, steps, controls=controls)``)."""
        raise NotImplementedError(f"objective '{self.name}' does not define its losses")

    def training_losses(self, pipeline: Pipeline, frames: Tensor, step: int,
                        controls: Tensor | None = None) -> dict[str, Tensor]:
        """The losses of optimiser step ``step`` (``controls`` as for ``losses``); an objective with a
        schedule overrides this."""
        return self.losses(pipeline, frames) if controls is None else self.losses(pipeline, frames, controls)

    def after_step(self, pipeline: Pipeline, steps_done: int) -> tuple[bool, list[str]]:
        """Called after each optimiser step: whether parts of the model were re-initialised (the
        trainer then restarts the optimiser's moments) and messages for the log."""
        return False, []

    def milestones(self, pipeline: Pipeline, steps_done: int) -> dict[str, Any]:
        """What the objective knows of a run's progress, for its verdict (core/training/verdict.py):
        ``objects_found`` (bool) and ``prediction_from`` (the step prediction started at, None if it
        never did), for objectives with such stages; empty otherwise."""
        return {}

    def report(self, metrics: dict[str, float]) -> dict[str, float]:
        """``evaluate``'s metrics as metrics.json names them (without the training ``loss``)."""
        return {key: value for key, value in metrics.items() if key != "loss"}

    def evaluate(self, pipeline: Pipeline, data: Tensor, batch_size: int,
                 controls: Tensor | None = None) -> dict[str, float]:
        """Metrics over a split (uint8 (N, T, H, W, C) on the model's device, with its ``controls``
        (N, T, m) when recorded under them); by default the mean of every loss, weighted by batch
        size. Override for metrics that are not means (e.g. medians)."""
        totals: dict[str, Tensor] = {}
        with inference(pipeline):
            for start in range(0, data.shape[0], batch_size):
                chunk = as_float(data[start:start + batch_size])
                losses = self.losses(pipeline, chunk, **self.batch_controls(controls, slice(start, start + batch_size)))
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value.detach() * chunk.shape[0]
        return {key: float(value) / data.shape[0] for key, value in totals.items()}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the objective (counters, multipliers); nothing by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``'s result."""
