"""The PAIG objective (Jaques et al. 2020): reconstruct the encoded frames, predict the next ones.

The encoder sees ``input_steps + pred_steps`` frames; the rollout starts at the last input frame.
Losses on the paper's scale (``core/kernel/losses.py``): ``recons`` over the encoded frames, ``pred`` over
the ``pred_steps`` predicted frames, ``extrap`` over any further frame of a longer (test) sequence;
training minimises ``pred + recons_weight·recons``.

The training schedule (all off in the paper's recipe): for ``warmup_steps`` only the
reconstruction is trained, so the autoencoder finds the objects before a prediction through a
random velocity estimator and wrong physics can pull them apart; then the predicted horizon grows
from one frame to ``pred_steps`` over ``horizon_steps``, so the physical parameters first fit short,
nearly linear motions; ``latent_weight`` adds the squared distance between the rolled-out positions
and the encoder's (detached) positions of the same frames, a gradient on the physics that does not
depend on rendered and true objects overlapping.

With ``backward_share`` (DeepMind's forward-backward training) that share of each batch after
warm-up is inferred from the window's last input frames and rolled back in time instead: a
rollout trained forwards alone need not hold backwards (``vpt_backward``) even when the physics is
reversible. When prediction starts, the physics hears where the trained encoder finds the objects
(``PhysicsSystem.objects_found``).

With ``discovery_share`` > 0 the warm-up also watches object discovery (plugins/discovery.py) every
``CHECK_EVERY`` steps: of the slots that explain less than that share of what the best slot
explains, the one explaining least is re-initialised (then left alone for ``GRACE_STEPS``), and
the prediction starts at the first check after ``warmup_steps`` at which every slot explains an
object of its own (at the latest after ``MAX_WARMUP_FACTOR`` × ``warmup_steps``). With
``guided_reset`` the slot starts looking for, and drawing, the colour the reconstruction misses.

Recipes (``--recipe``), config layers over the task preset (``recipes/paig-*.yaml``):

- ``fast`` (default): finds the objects and the physical parameters in minutes on a CPU. Adam, with
  a larger learning rate for the physical parameters (their gradients are small and their scale is
  logarithmic); batch 16 (more updates per second); the soft-argmax coordinate head and the
  displacement-based velocity estimator; the schedule above, its warm-up on the input frames alone
  (cheaper steps) and with guided re-initialisation; a length in steps (1,860, the 30 epochs of a
  generated 1,000-sequence set), so a user's 300 sequences get the training 1,000 get.
  docs/RESULTS.md has the ablation.
- ``paper``: the original code's training, kept for faithful comparisons: TF-style RMSprop at the
  task's learning rate, batch 100, element-wise clipping, the MLP coordinate head and velocity MLP,
  every loss from the first step.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from pivf.api import (
    Objective,
    ObjectiveParams,
    Pipeline,
    PipelineOutput,
    as_float,
    frame_sse,
    hookimpl,
    inference,
    median_time,
    prediction_time,
    read_recipes,
    state_sse,
    still_time,
)
from pivf.plugins.discovery import contributions, missing_colour, reset_slot
from pivf.plugins.objectives import RECIPES

__all__ = ["PaigObjective", "pivf_objectives"]

#: PAIG settings that sat in ``training:`` before the objective became a plugin section
LEGACY_FIELDS = ("recons_weight", "warmup_steps", "horizon_steps", "discovery_share", "latent_weight")


class PaigParams(ObjectiveParams):
    recons_weight: float = Field(3.0, ge=0, description="α in loss = pred + α·recons")
    warmup_steps: int = Field(0, ge=0, description="steps of reconstruction alone before prediction is trained")
    horizon_steps: int = Field(0, ge=0, description="steps over which the trained prediction horizon grows from "
                                                   "1 frame to pred_steps after warm-up (0: all at once)")
    discovery_share: float = Field(0.0, ge=0, lt=1, description="during warm-up, re-initialise an object slot "
                                   "that explains less than this share of what the best slot explains, and start "
                                   "prediction once every slot explains an object (0: off)")
    latent_weight: float = Field(0.0, ge=0, description="weight of the squared distance between rolled-out and "
                                                        "encoded states of the predicted frames")
    guided_reset: bool = Field(False, description="re-initialise an idle slot towards the colour the "
                               "reconstruction misses most, instead of at random")
    backward_share: float = Field(0.0, ge=0, lt=1, description="share of each training batch whose state is "
                                  "inferred from the window's last input frames and rolled back in time over the "
                                  "predicted horizon (DeepMind's forward-backward training; time-reversible data)")
    warmup_frames: int | Literal["inputs"] | None = Field(
        None, description="frames per sequence encoded and reconstructed during warm-up (the first ones): a number, "
                          "inputs (the input frames), or empty (the whole training window); fewer frames make "
                          "warm-up steps cheaper")

    @model_validator(mode="after")
    def _warmup_frames_hold_the_inputs(self) -> PaigParams:
        window = self.input_steps + self.pred_steps
        if isinstance(self.warmup_frames, int) and not self.input_steps <= self.warmup_frames <= window:
            raise ValueError(f"warmup_frames must be between input_steps ({self.input_steps}) and "
                             f"input_steps + pred_steps ({window}), or inputs, got {self.warmup_frames}")
        return self

    @property
    def warmup_length(self) -> int | None:
        """Frames per sequence during warm-up (None: the whole training window)."""
        return self.input_steps if self.warmup_frames == "inputs" else self.warmup_frames


def frame_losses(out: PipelineOutput, frames: Tensor, input_steps: int, pred_steps: int) -> dict[str, Tensor]:
    """pred over the first ``pred_steps`` rolled-out frames, extrap over the rest, recons over the encoded frames."""
    rolled = out.frames[:, 1:]
    targets = frames[:, input_steps:]
    losses = {}
    if pred_steps > 0:
        losses["pred"] = frame_sse(rolled[:, :pred_steps], targets[:, :pred_steps])
    if rolled.shape[1] > pred_steps:
        losses["extrap"] = frame_sse(rolled[:, pred_steps:], targets[:, pred_steps:rolled.shape[1]])
    if out.recons is not None:
        losses["recons"] = frame_sse(out.recons, frames[:, : out.recons.shape[1]])
    return losses


class PaigObjective(Objective[PaigParams]):
    """Reconstruct and predict frames through object positions (see the module docs)."""

    name = "paig"
    description = "PAIG: reconstruct the encoded frames and predict the next ones (pred + α·recons)"
    states = ("objects",)
    headline = ("recons", "pred", "extrap")
    recipes = read_recipes(RECIPES, "paig", ("fast", "paper", "keypoints"))
    CHECK_EVERY = 25
    GRACE_STEPS = 100
    MAX_WARMUP_FACTOR = 3
    #: the share a slot must explain to count as found in a run's verdict when the watch is off
    VERDICT_SHARE = 0.25

    def __init__(self, params: PaigParams | dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.prediction_from: int | None = None  # the step prediction started at, when discovery gates it
        self.checked_from = 0  # no discovery check before this step (a re-initialised slot gets time)
        self.last_batch: tuple[Tensor, Tensor] | None = None  # (positions, frames) of the last training step

    @classmethod
    def legacy_params(cls, config: dict[str, Any], chosen: bool) -> dict[str, Any] | None:
        """PAIG's weights and schedule, from ``training:``."""
        training = config["training"]
        found = {key: training.pop(key) for key in LEGACY_FIELDS if key in training}
        return found or None

    def losses(self, pipeline: Pipeline, frames: Tensor, controls: Tensor | None = None) -> dict[str, Tensor]:
        out = pipeline(frames[:, : self.train_length], steps=frames.shape[1] - self.input_steps, controls=controls)
        losses = frame_losses(out, frames, self.input_steps, self.pred_steps)
        losses["loss"] = self._weighted(losses)
        return losses

    def _weighted(self, losses: dict[str, Tensor]) -> Tensor:
        """pred + α·recons (the original's only terms) + the state-consistency term when it is on."""
        weights = {"pred": 1.0, "recons": self.params.recons_weight, "latent": self.params.latent_weight}
        return sum((weight * losses[key] for key, weight in weights.items() if key in losses), torch.zeros(()))

    def horizon(self, step: int) -> int:
        """Frames predicted (and scored) at training step ``step``: 0 during warm-up."""
        p = self.params
        start = self.prediction_from if p.discovery_share > 0 else p.warmup_steps
        if start is None or step < start:
            return 0
        if p.horizon_steps == 0:
            return self.pred_steps
        return min(self.pred_steps, 1 + (step - start) * self.pred_steps // p.horizon_steps)

    def training_losses(self, pipeline: Pipeline, frames: Tensor, step: int,
                        controls: Tensor | None = None) -> dict[str, Tensor]:
        horizon = self.horizon(step)
        warmup_frames = self.params.warmup_length
        window = frames[:, : self.train_length if horizon or warmup_frames is None else warmup_frames]
        backward = round(self.params.backward_share * len(window)) if horizon and controls is None else 0
        forward = window[backward:]
        out = pipeline(forward, steps=horizon, controls=controls)
        self.last_batch = (out.encoded.positions.detach(), forward)
        losses = frame_losses(out, forward, self.input_steps, horizon)
        if backward:
            losses["pred"] = (losses["pred"] * len(forward)
                              + self.backward_prediction(pipeline, window[:backward], horizon) * backward) / len(window)
        if horizon > 0 and self.params.latent_weight > 0:
            targets = out.encoded.positions[:, self.input_steps:self.input_steps + horizon].detach()
            losses["latent"] = state_sse(out.q[1:].transpose(0, 1), targets)
        losses["loss"] = self._weighted(losses)
        return losses

    def backward_prediction(self, pipeline: Pipeline, window: Tensor, horizon: int) -> Tensor:
        """pred of the window's state at its last frame, inferred from its last input frames in their
        order and rolled back ``horizon`` frames with −dt, against the frames before it."""
        encoded = pipeline.encode(window[:, -self.input_steps:])
        q, _ = pipeline.rollout(encoded.q0, encoded.p0, horizon, dt=-pipeline.dt)
        return frame_sse(pipeline.decode(q[1:]), window[:, :-1].flip(1)[:, :horizon])

    def after_step(self, pipeline: Pipeline, steps_done: int) -> tuple[bool, list[str]]:
        p = self.params
        if (p.discovery_share == 0 or self.prediction_from is not None or self.last_batch is None
                or steps_done % self.CHECK_EVERY or steps_done < self.checked_from):
            return False, []
        result = contributions(pipeline, *self.last_batch, p.discovery_share)
        messages, reinitialised = [], False
        at_limit = steps_done >= self.MAX_WARMUP_FACTOR * p.warmup_steps
        if steps_done >= p.warmup_steps and (result.found or at_limit):
            self.prediction_from = steps_done
            pipeline.physics.objects_found(self.last_batch[0].float())
            messages.append(f"step {steps_done}: prediction starts (objects "
                            f"{'found' if result.found else 'not all found, warm-up at its limit'})")
            return False, messages
        colour = missing_colour(pipeline, *self.last_batch) if p.guided_reset and result.idle else None
        # one slot per check, the one that explains least: two slots sharing an object both look
        # idle, and re-initialising both would lose the object they share
        for index in sorted(result.idle, key=lambda j: result.rises[j])[:1]:
            reset = reset_slot(pipeline, index, colour)
            reinitialised |= bool(reset)
            messages.append(f"step {steps_done}: object {index} explains little of the images; re-initialised its "
                            f"{' and '.join(reset) or 'nothing (the plugins cannot)'} parts")
        if reinitialised:
            self.checked_from = steps_done + self.GRACE_STEPS
        return reinitialised, messages

    def milestones(self, pipeline: Pipeline, steps_done: int) -> dict[str, Any]:
        """Whether the slots explain every object of the last training batch, each its own (measured
        now: ``Contributions.complete``), and when prediction started."""
        p = self.params
        if self.last_batch is None:
            return {}
        found = contributions(pipeline, *self.last_batch, p.discovery_share or self.VERDICT_SHARE).complete
        started = self.prediction_from if p.discovery_share > 0 else (
            p.warmup_steps if steps_done > p.warmup_steps else None)
        return {"objects_found": found, "prediction_from": started}

    def evaluate(self, pipeline: Pipeline, data: Tensor, batch_size: int,
                 controls: Tensor | None = None) -> dict[str, float]:
        """The mean losses and, for data recorded without controls, the median valid prediction
        time forward and backward (``vpt``, ``vpt_backward``; core/kernel/vpt.py), HGN's measure of
        how long the rollout stays on the video, beside that of a still picture (``vpt_still``)."""
        metrics = super().evaluate(pipeline, data, batch_size, controls)
        if controls is not None:
            return metrics
        times: dict[str, list[Tensor]] = {"vpt": [], "vpt_backward": [], "vpt_still": []}
        with inference(pipeline):
            for start in range(0, data.shape[0], batch_size):
                chunk = as_float(data[start:start + batch_size])
                times["vpt"].append(prediction_time(pipeline, chunk, self.input_steps))
                times["vpt_backward"].append(prediction_time(pipeline, chunk, self.input_steps, backward=True))
                times["vpt_still"].append(still_time(chunk, self.input_steps))
        return {**metrics, **{key: median_time(values) for key, values in times.items()}}

    def report(self, metrics: dict[str, float]) -> dict[str, float]:
        """PAIG's losses read ``recons_loss``, ``pred_loss``, ``extrap_loss`` in metrics.json; the
        prediction times keep their names."""
        return {key if key.startswith("vpt") else f"{key}_loss": value for key, value in metrics.items()
                if key != "loss"}

    def state_dict(self) -> dict[str, Any]:
        return {"prediction_from": self.prediction_from, "checked_from": self.checked_from}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prediction_from, self.checked_from = state["prediction_from"], state["checked_from"]


@hookimpl
def pivf_objectives() -> list[type]:
    return [PaigObjective]
