"""Tasks whose state is the pixel positions of balls on a black background (the PAIG look).

Ball j is drawn in channel 2 − j, so ball 0 is blue, ball 1 green and ball 2 red (original
generators), with no occlusion. A third-party object-based physics plugin gets a dataset by
subclassing ``BallTask`` and writing ``sample_initial``.
"""
from __future__ import annotations

from typing import TypeVar

import torch
from pydantic import Field
from torch import Tensor

from pivf.core.data.render import draw_discs
from pivf.core.data.task import Task, TaskParams, Trajectory

__all__ = ["BallTask", "BallTaskParams"]


class BallTaskParams(TaskParams):
    radius: float = Field(2.0, gt=0, description="ball radius in pixels; sequences where a ball touches a wall are "
                                                 "redrawn")
    one_colour: bool = Field(False, description="draw every ball white, so colour cannot tell the objects apart "
                                                "(a model must keep each object by its motion)")


def inside_walls(q: Tensor, margin: float, size: int) -> Tensor:
    """(N,) True where every position of every object in (N, S, K, 2) stays ``margin`` px from the edges."""
    return ((q >= margin) & (q <= size - margin)).flatten(1).all(1)


BTP = TypeVar("BTP", bound=BallTaskParams)


class BallTask(Task[BTP]):
    """Balls of ``radius`` px whose q (N, T, K, 2) are pixel positions; walls reject a sequence."""

    Params = BallTaskParams

    def accept(self, q: Tensor, p: Tensor) -> Tensor:
        return inside_walls(q, self.params.radius, self.params.image_size)

    def colours(self) -> Tensor:
        """(K, 3): ball j in channel 2 − j (cycling for more than three balls), or all white."""
        k = self.params.n_objects
        if self.params.one_colour:
            return torch.ones(k, 3)
        return torch.eye(3, dtype=torch.float32)[[2 - j % 3 for j in range(k)]]

    def render(self, trajectory: Trajectory) -> Tensor:
        size = self.params.image_size
        colours = self.colours().to(trajectory.positions.device)
        background = torch.zeros(colours.shape[1], device=colours.device)
        return draw_discs(trajectory.positions.float(), self.params.radius, colours, background, size, size)
