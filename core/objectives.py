"""Training objectives: which frames a model sees, what it predicts, and how that is scored."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from pivf.core.config import ExperimentConfig
from pivf.core.data.dataset import as_float
from pivf.core.losses import paig_losses, paig_objective
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
    the prediction window counts towards the extrapolation loss."""

    name = "paig"

    def losses(self, pipeline: Pipeline, frames: Tensor) -> dict[str, Tensor]:
        encoded_frames = frames[:, : self.train_length]
        out = pipeline(encoded_frames, steps=frames.shape[1] - self.input_steps)
        losses = paig_losses(out, frames, self.input_steps, self.pred_steps)
        losses["loss"] = paig_objective(losses, self.config.training.recons_weight)
        return losses


OBJECTIVES: dict[str, type[Objective]] = {"paig": PaigObjective}


def make_objective(config: ExperimentConfig) -> Objective:
    from pivf.core.hgn import HgnObjective  # imported late: the hgn encoder plugin imports core.hgn

    return {**OBJECTIVES, "hgn": HgnObjective}[config.training.objective](config)
