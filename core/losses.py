"""Losses on the original papers' scales.

PAIG: squared error summed over the pixels and channels of a frame with values in [0, 1], averaged
over frames and sequences, so its thresholds (recons < 1.5, pred < 3.0) mean what they meant there.
"""
from __future__ import annotations

from torch import Tensor

from pivf.core.pipeline import PipelineOutput


def frame_sse(prediction: Tensor, target: Tensor) -> Tensor:
    """Σ over C, H, W of the squared error, averaged over batch and time."""
    return (prediction - target).pow(2).sum(dim=(-3, -2, -1)).mean()


def state_sse(prediction: Tensor, target: Tensor) -> Tensor:
    """(B, T, N, D) states: Σ over objects and coordinates of the squared error, averaged over B and T."""
    return (prediction - target).pow(2).sum(dim=(-2, -1)).mean()


def paig_losses(out: PipelineOutput, frames: Tensor, input_steps: int, pred_steps: int) -> dict[str, Tensor]:
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


def paig_objective(losses: dict[str, Tensor], recons_weight: float) -> Tensor:
    """train loss = pred + α·recons (the original's only terms)."""
    return losses.get("pred", 0.0) + recons_weight * losses.get("recons", 0.0)
