"""Object discovery, watched: does every object slot explain an object of its own?

The failure that costs PAIG its seeds is two slots settling on the same object while another object
is never explained: the reconstruction then sits at one object's error for thousands of steps. It
shows directly in what each slot contributes. Moving slot j out of the image and decoding again
raises the reconstruction error by what j explains; a slot that duplicates another, or explains
nothing, raises it by almost nothing. The test works for any decoder that draws objects where their
coordinates put them, on any images, with no threshold in pixel units.

A slot found idle can be re-initialised where the encoder or decoder has re-initialisable object
slots (``SlotModel``: ``paig_unet`` and ``spatial_transformer`` have them); the watch asks for no
other part of the contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from pivf.api import Pipeline, frame_sse

__all__ = ["SlotModel", "contributions", "departure_colours", "missing_colour", "reset_slot"]

#: where a slot is moved to take it out of the picture, in image sizes from the origin
OFF_IMAGE = -4.0


@runtime_checkable
class SlotModel(Protocol):
    """An encoder or decoder with re-initialisable object slots."""

    def reset_object(self, index: int, colour: Tensor | None = None) -> bool:
        """Re-initialise what only object ``index`` uses (an output channel, its templates), so its
        slot can find another object; False when nothing is. ``colour`` (C,), when given, is the
        colour of what the reconstruction misses most: a hint where to look."""


def reset_slot(pipeline: Pipeline, index: int, colour: Tensor | None = None) -> list[str]:
    """Re-initialise object slot ``index`` in the parts of ``pipeline`` that are ``SlotModel``s;
    the names of the parts that did."""
    return [name for name, part in (("encoder", pipeline.encoder), ("decoder", pipeline.decoder))
            if isinstance(part, SlotModel) and part.reset_object(index, colour)]


@dataclass(frozen=True)
class Contributions:
    """Rise of the reconstruction error when each slot is taken out, and the verdict."""

    rises: tuple[float, ...]
    idle: tuple[int, ...]  # slots that explain less than ``share`` of what the best one explains
    error: float = 0.0  # the reconstruction error with every slot in place
    all_out: float = 0.0  # its rise when every slot is taken out at once

    @property
    def found(self) -> bool:
        return not self.idle

    @property
    def complete(self) -> bool:
        """Every slot explains an object of its own and together they explain the frames: the slots'
        rises add up to at least half of the rise with all of them out (two slots on one object each
        rise by almost nothing), and what is left unexplained is under 1/N of what they explain (an
        object missing leaves about one object's worth). Stricter than ``found``, which the watch
        asks of a model still learning; a finished run's verdict asks this."""
        n = len(self.rises)
        return self.found and sum(self.rises) >= 0.5 * self.all_out and self.all_out >= n * self.error


@torch.no_grad()
def contributions(pipeline: Pipeline, positions: Tensor, frames: Tensor, share: float) -> Contributions:
    """``positions`` (B, T, N, D) encoded from ``frames`` (B, T, C, H, W)."""
    states = positions.detach().flatten(0, 1)  # (B·T, N, D)
    targets = frames.flatten(0, 1)
    base = frame_sse(pipeline.decoder(states), targets)
    size = frames.shape[-1]
    rises = []
    for j in range(states.shape[1]):
        without = states.clone()
        without[:, j] = OFF_IMAGE * size
        rises.append(float(frame_sse(pipeline.decoder(without), targets) - base))
    best = max(rises)
    idle = tuple(j for j, rise in enumerate(rises) if best > 0 and rise < share * best)
    all_out = float(frame_sse(pipeline.decoder(torch.full_like(states, OFF_IMAGE * size)), targets) - base)
    return Contributions(rises=tuple(rises), idle=idle, error=float(base), all_out=all_out)


@torch.no_grad()
def missing_colour(pipeline: Pipeline, positions: Tensor, frames: Tensor) -> Tensor:
    """(C,): the colour of what the reconstruction leaves out, the mean of the positive residual
    (image brighter than its reconstruction) weighted by its energy per pixel."""
    states = positions.detach().flatten(0, 1)
    targets = frames.flatten(0, 1)
    residual = (targets - pipeline.decoder(states)).clamp_min(0)  # (M, C, H, W)
    energy = residual.pow(2).sum(1, keepdim=True)
    return (residual * energy).sum((0, 2, 3)) / energy.sum().clamp_min(1e-12)


#: share of the pixels, the most unlike the backdrop, whose colours ``departure_colours`` clusters
DEPARTURE_SHARE = 0.01
#: a pixel nearer the backdrop than this (in RGB distance, 0-1 scale) is never an object's
MIN_DEPARTURE = 0.1


@torch.no_grad()
def departure_colours(differences: Tensor, k: int, iterations: int = 25) -> Tensor | None:
    """(k, C): the k colour changes that objects make against a fixed backdrop, from ``differences``
    (M, C, H, W) = frames − backdrop, or None when too few pixels differ.

    The pixels most unlike the backdrop (the top ``DEPARTURE_SHARE``) are clustered by k-means,
    started from the strongest departure and then from the one farthest from the centres chosen so
    far, so the result is deterministic. On a red bob in front of a grey wall the change is
    "more red, much less green and blue"; a slot's colour path pointed that way lights up the bob
    and nothing else, where a random one may light up the wall.

    In colour (C = 3) a change is measured without its grey part (each pixel's change less its mean
    over the channels): what lighting does (a brightness drift, a shadow, a dark hand or bar in
    front of the scene) changes all channels alike, an object's colour does not, and a colour path
    pointed at a change without grey does not respond to light at all.
    """
    pixels = differences.movedim(1, -1).reshape(-1, differences.shape[1])
    if pixels.shape[1] == 3:
        pixels = pixels - pixels.mean(dim=1, keepdim=True)
    strength = pixels.norm(dim=1)
    threshold = max(float(torch.quantile(strength[:1 << 24], 1 - DEPARTURE_SHARE)), MIN_DEPARTURE)
    departures = pixels[strength >= threshold]
    if departures.shape[0] < k:
        return None
    centres = departures[strength[strength >= threshold].argmax()][None]
    while centres.shape[0] < k:
        distance = torch.cdist(departures, centres).min(dim=1).values
        centres = torch.cat((centres, departures[distance.argmax()][None]))
    for _ in range(iterations):
        nearest = torch.cdist(departures, centres).argmin(dim=1)
        centres = torch.stack([departures[nearest == j].mean(0) if (nearest == j).any() else centres[j]
                               for j in range(k)])
    return centres
