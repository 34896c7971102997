"""Running a trained pipeline: inference mode, rollouts from a state, predictions from frames and
videos sampled from an encoder's prior. Every objective and command uses these."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from pivf.core.kernel.pipeline import Pipeline

__all__ = ["inference", "predict", "rollout_frames", "sample"]


@contextmanager
def inference(pipeline: Pipeline) -> Iterator[None]:
    """Eval mode (a variational encoder returns its mean) and no graph; the previous mode comes back
    afterwards, also when the body raises."""
    was_training = pipeline.training
    pipeline.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        pipeline.train(was_training)


@runtime_checkable
class LatentPrior(Protocol):
    """An encoder with a N(0, I) prior over its z and a map from z to the initial state."""

    def prior_shape(self) -> tuple[int, ...] | None:
        """Shape of one z; None when the encoder is deterministic (no prior was learned)."""

    def transform(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z → (q0, p0)."""


def rollout_frames(pipeline: Pipeline, q0: Tensor, p0: Tensor, steps: int, speed: float = 1.0) -> Tensor:
    """Frames (B, 1 + steps, C, H, W) of the rollout from ``(q0, p0)``.

    ``speed`` scales the time step: −1 runs time backwards, 2 plays twice as fast, 0.5 half as fast.
    """
    with inference(pipeline):
        q, _ = pipeline.rollout(q0, p0, steps, dt=speed * pipeline.dt)
        return pipeline.decode(q)


def predict(pipeline: Pipeline, frames: Tensor, steps: int, speed: float = 1.0) -> Tensor:
    """Infer the state at the last input frame of ``frames`` (B, T, C, H, W) and roll it out."""
    with inference(pipeline):
        encoded = pipeline.encoder(frames)
    return rollout_frames(pipeline, encoded.q0, encoded.p0, steps, speed)


def sample(pipeline: Pipeline, n: int, steps: int, speed: float = 1.0,
           generator: torch.Generator | None = None) -> Tensor:
    """``n`` new videos: z from the prior N(0, I), mapped to (q0, p0) by the encoder's transformer.

    The prior is over the encoder's z (where the KL term acts), not over (q, p) directly.
    """
    prior = pipeline.encoder if isinstance(pipeline.encoder, LatentPrior) else None
    shape = prior.prior_shape() if prior is not None else None
    if prior is None or shape is None:
        raise ValueError(f"encoder '{pipeline.encoder.name}' has no prior to sample from; use a variational encoder")
    device = next(pipeline.parameters()).device
    z_device = generator.device if generator is not None else device  # a generator draws on its own device
    z = torch.randn((n, *shape), generator=generator, device=z_device).to(device)
    with inference(pipeline):
        q0, p0 = prior.transform(z)
    return rollout_frames(pipeline, q0, p0, steps, speed)
