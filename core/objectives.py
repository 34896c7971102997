"""Training objectives: which frames a model sees, what it predicts, and how that is scored."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from pivf.core.config import ExperimentConfig
from pivf.core.data.dataset import as_float
from pivf.core.discovery import contributions
from pivf.core.losses import paig_losses, paig_objective, state_sse
from pivf.core.pipeline import Pipeline


class Objective:
    """Base: ``losses`` returns named scalar tensors; ``"loss"`` is what training minimises."""

    name: ClassVar[str] = ""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.input_steps = config.data.input_steps
        self.pred_steps = config.data.pred_steps

    @property
    def train_length(self) -> int:
        """Frames of a training sequence the objective uses."""
        return self.input_steps + self.pred_steps

    def losses(self, pipeline: Pipeline, frames: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def training_losses(self, pipeline: Pipeline, frames: Tensor, step: int) -> dict[str, Tensor]:
        """The losses of optimiser step ``step``; an objective with a schedule overrides this."""
        return self.losses(pipeline, frames)

    def after_step(self, pipeline: Pipeline, steps_done: int) -> tuple[bool, list[str]]:
        """Called after each optimiser step: whether parts of the model were re-initialised (the
        trainer then restarts the optimiser's moments) and messages for the log."""
        return False, []

    def report(self, metrics: dict[str, float]) -> dict[str, float]:
        """Names for metrics.json: PAIG's losses read ``pred_loss``, ``extrap_loss``, ``recons_loss``."""
        return {f"{key}_loss": value for key, value in metrics.items() if key != "loss"}

    @torch.no_grad()
    def evaluate(self, pipeline: Pipeline, data: Tensor, batch_size: int) -> dict[str, float]:
        """Metrics over a split (uint8 (N, T, H, W, C) on the model's device); by default the mean of
        every loss, weighted by batch size. Override for metrics that are not means (e.g. medians)."""
        was_training = pipeline.training
        pipeline.eval()
        totals: dict[str, Tensor] = {}
        for start in range(0, data.shape[0], batch_size):
            chunk = as_float(data[start:start + batch_size])
            for key, value in self.losses(pipeline, chunk).items():
                totals[key] = totals.get(key, 0.0) + value.detach() * chunk.shape[0]
        pipeline.train(was_training)
        return {key: float(value) / data.shape[0] for key, value in totals.items()}


class PaigObjective(Objective):
    """Encode the input and prediction frames, roll out from the last input frame.

    Training sees ``input_steps + pred_steps`` frames; on longer (test) sequences every frame past
    the prediction window counts towards the extrapolation loss.

    The training schedule (all off in the paper's recipe): for ``warmup_steps`` only the
    reconstruction is trained, so the autoencoder finds the objects before a prediction through a
    random velocity estimator and wrong physics can pull them apart; then the predicted horizon grows
    from one frame to ``pred_steps`` over ``horizon_steps``, so the physical parameters first fit
    short, nearly linear motions; ``latent_weight`` adds the squared distance between the rolled-out
    positions and the encoder's (detached) positions of the same frames, a gradient on the physics
    that does not depend on rendered and true objects overlapping.

    With ``discovery_share`` > 0 the warm-up also watches object discovery (core/discovery.py)
    every ``CHECK_EVERY`` steps: a slot that explains less than that share of what the best slot
    explains is re-initialised (then left alone for ``GRACE_STEPS``), and the prediction starts at the
    first check after ``warmup_steps`` at which every slot explains an object of its own (at the
    latest after ``MAX_WARMUP_FACTOR`` × ``warmup_steps``)."""

    name = "paig"
    CHECK_EVERY = 25
    GRACE_STEPS = 100
    MAX_WARMUP_FACTOR = 3

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__(config)
        self.prediction_from: int | None = None  # the step prediction started at, when discovery gates it
        self.checked_from = 0  # no discovery check before this step (a re-initialised slot gets time)
        self.last_batch: tuple[Tensor, Tensor] | None = None  # (positions, frames) of the last training step

    def losses(self, pipeline: Pipeline, frames: Tensor) -> dict[str, Tensor]:
        encoded_frames = frames[:, : self.train_length]
        out = pipeline(encoded_frames, steps=frames.shape[1] - self.input_steps)
        losses = paig_losses(out, frames, self.input_steps, self.pred_steps)
        losses["loss"] = paig_objective(losses, self.config.training.recons_weight)
        return losses

    def horizon(self, step: int) -> int:
        """Frames predicted (and scored) at training step ``step``: 0 during warm-up."""
        tcfg = self.config.training
        start = self.prediction_from if tcfg.discovery_share > 0 else tcfg.warmup_steps
        if start is None or step < start:
            return 0
        if tcfg.horizon_steps == 0:
            return self.pred_steps
        return min(self.pred_steps, 1 + (step - start) * self.pred_steps // tcfg.horizon_steps)

    def after_step(self, pipeline: Pipeline, steps_done: int) -> tuple[bool, list[str]]:
        tcfg = self.config.training
        if (tcfg.discovery_share == 0 or self.prediction_from is not None or self.last_batch is None
                or steps_done % self.CHECK_EVERY or steps_done < self.checked_from):
            return False, []
        result = contributions(pipeline, *self.last_batch, tcfg.discovery_share)
        messages, reinitialised = [], False
        at_limit = steps_done >= self.MAX_WARMUP_FACTOR * tcfg.warmup_steps
        if steps_done >= tcfg.warmup_steps and (result.found or at_limit):
            self.prediction_from = steps_done
            messages.append(f"step {steps_done}: prediction starts (objects "
                            f"{'found' if result.found else 'not all found, warm-up at its limit'})")
            return False, messages
        for index in result.idle:
            reset = [part for part in ("encoder", "decoder") if getattr(pipeline, part).reset_object(index)]
            reinitialised |= bool(reset)
            messages.append(f"step {steps_done}: object {index} explains little of the images; re-initialised its "
                            f"{' and '.join(reset) or 'nothing (the plugins cannot)'} parts")
        if reinitialised:
            self.checked_from = steps_done + self.GRACE_STEPS
        return reinitialised, messages

    def state_dict(self) -> dict[str, Any]:
        return {"prediction_from": self.prediction_from, "checked_from": self.checked_from}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prediction_from, self.checked_from = state["prediction_from"], state["checked_from"]

    def training_losses(self, pipeline: Pipeline, frames: Tensor, step: int) -> dict[str, Tensor]:
        tcfg = self.config.training
        horizon = self.horizon(step)
        out = pipeline(frames[:, : self.train_length], steps=horizon)
        self.last_batch = (out.encoded.positions.detach(), frames[:, : self.train_length])
        losses = paig_losses(out, frames[:, : self.train_length], self.input_steps, horizon)
        if horizon > 0 and tcfg.latent_weight > 0:
            targets = out.encoded.positions[:, self.input_steps:self.input_steps + horizon].detach()
            losses["latent"] = state_sse(out.q[1:].transpose(0, 1), targets)
        losses["loss"] = paig_objective(losses, tcfg.recons_weight) + tcfg.latent_weight * losses.get("latent", 0.0)
        return losses


OBJECTIVES: dict[str, type[Objective]] = {"paig": PaigObjective}


def make_objective(config: ExperimentConfig) -> Objective:
    from pivf.core.hgn import HgnObjective  # imported late: the hgn encoder plugin imports core.hgn

    return {**OBJECTIVES, "hgn": HgnObjective}[config.training.objective](config)
