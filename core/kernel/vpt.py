"""Valid prediction time (VPT): for how many frames a rollout stays on the video.

A predicted frame is valid while its error mean((truth − prediction)²)/mean(truth²) stays within
``VPT_THRESHOLD`` (HGN++'s measure); the VPT of a sequence counts the leading valid frames. Forward,
the encoder sees the first ``input_steps`` frames and the state it infers at the last of them is
rolled forward; backward, it sees the last ``input_steps`` frames (in their order) and the state at
the last frame is rolled back with −dt over the frames it did not see. Any pipeline has both, so
PAIG's and HGN's runs are scored alike. ``still_time`` is the VPT of no model at all, the last
input frame held: where small objects move over a large backdrop it is far above 0, and a model's
VPT means something only above it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pivf.core.kernel.pipeline import Pipeline

__all__ = ["VPT_THRESHOLD", "median_time", "prediction_time", "still_time", "valid_prediction_time"]

#: normalised per-frame error above which a prediction is no longer valid
VPT_THRESHOLD = 0.025


def valid_prediction_time(prediction: Tensor, target: Tensor, threshold: float = VPT_THRESHOLD) -> Tensor:
    """Leading frames of each sequence whose error mean((gt−pred)²)/mean(gt²) stays ≤ ``threshold``.

    Inputs (B, T, C, H, W); returns (B,) integers in 0..T. A later frame that happens to fall back
    under the threshold does not count: the prediction already failed once.
    """
    error = (prediction - target).pow(2).flatten(2).mean(-1) / target.pow(2).flatten(2).mean(-1).clamp_min(1e-12)
    return (error <= threshold).long().cumprod(1).sum(1)


def prediction_time(pipeline: Pipeline, frames: Tensor, input_steps: int, backward: bool = False) -> Tensor:
    """(B,) VPT over the frames of ``frames`` (B, T, C, H, W) the encoder did not see, forward from
    the first ``input_steps`` frames or backward from the last ones (see the module docs)."""
    unseen = frames.shape[1] - input_steps
    if backward:
        encoded = pipeline.encode(frames[:, -input_steps:])
        q, _ = pipeline.rollout(encoded.q0, encoded.p0, frames.shape[1] - 1, dt=-pipeline.dt)
        return valid_prediction_time(pipeline.decode(q[input_steps:]), frames[:, :unseen].flip(1))
    encoded = pipeline.encode(frames[:, :input_steps])
    q, _ = pipeline.rollout(encoded.q0, encoded.p0, unseen)
    return valid_prediction_time(pipeline.decode(q[1:]), frames[:, input_steps:])


def still_time(frames: Tensor, input_steps: int) -> Tensor:
    """(B,) VPT of the last input frame held still over the frames after it."""
    held = frames[:, input_steps - 1:input_steps].expand_as(frames[:, input_steps:])
    return valid_prediction_time(held, frames[:, input_steps:])


def median_time(times: list[Tensor]) -> float:
    """The median VPT over a split's batches."""
    return float(torch.cat(times).double().quantile(0.5))
