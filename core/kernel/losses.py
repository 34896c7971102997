"""Squared errors on the scale the PAIG paper reports: summed over the pixels and channels of a
frame with values in [0, 1] (or over the coordinates of a state), averaged over frames and sequences,
so its thresholds (recons < 1.5, pred < 3.0) mean what they meant there."""
from __future__ import annotations

from torch import Tensor

__all__ = ["frame_sse", "state_sse"]


def frame_sse(prediction: Tensor, target: Tensor) -> Tensor:
    """Σ over C, H, W of the squared error, averaged over batch and time."""
    return (prediction - target).pow(2).sum(dim=(-3, -2, -1)).mean()


def state_sse(prediction: Tensor, target: Tensor) -> Tensor:
    """(B, T, N, D) states: Σ over objects and coordinates of the squared error, averaged over B and T."""
    return (prediction - target).pow(2).sum(dim=(-2, -1)).mean()
