"""A decoder-free objective: the physics is fitted to the encoder's object positions, never to pixels.

PAIG scores a rollout by rendering it; on real footage (noise, clutter, occluders, compression) the
decoder must then draw what it cannot, and its errors reach the physics. Here, as in decoder-free
physics learning from video (CVPR 2025, "Learning Physics From Video"), the loss lives in position
space: the encoder (PAIG's, its soft-argmax head reads positions in pixels) gives every frame's object
positions, the physics rolls the state inferred at the last input frame forward, and

- ``pred``: squared distance (px², summed over objects and coordinates, mean over frames and
  sequences, ``state_sse``) between the rolled-out and the encoded positions of the ``pred_steps``
  predicted frames (``extrap`` on the frames past them, in a longer test sequence);
- ``inputs``: the same for the input frames, the inferred state rolled *back* through the physics
  (PAIG's reconstruction of the inputs, in positions): the velocity estimate must agree with the
  physics where the encoder saw the motion.

The pipeline's decoder is built but never called in training: it gets no gradient and costs nothing.

Positions that both sides of a loss come from can collapse: a constant position is a perfect rollout.
One term keeps them on the objects (``anti_collapse``):

- ``equivariance`` (default): each sequence's input frames, shifted by a random whole number of
  pixels d (|dx|, |dy| ≤ ``max_shift``), must encode to the positions plus d. A constant or shrunken
  position breaks it, and it holds exactly for a position that follows image content, in the pixel
  units the physics' lengths are learned in. An encoder that subtracts a fixed backdrop (a ``backdrop``
  buffer, ``background: median``) sees the objects moved over the same backdrop.
- ``variance``: VICReg's hinge on each coordinate's standard deviation over a batch's frames, kept
  above ``min_std`` px. It stops the collapse to a point but not a shrinking or a drift away from
  the objects, so lengths in pixels are not pinned.

Measured (docs/experiments.md): under ``variance`` a MuJoCo pendulum's rod comes out 7.4 px instead
of 13.3 px and g/L 9 % high, under ``equivariance`` 11.1 px and 3.5 %; detaching the targets (a
stop-gradient, as in BYOL) lets the positions collapse even with equivariance.

The ``fast`` recipe trains from the encoder's data-prepared start (``background: median``: the
backdrop subtracted, each slot's colour path pointed at an object's colour), which already sits on
the objects, so no warm-up is needed. Evaluation reports the position losses and ``spread``, the
standard deviation of the encoded positions (px; near 0 means collapsed); the training ``loss`` adds
the anti-collapse term.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from pivf.api import Objective, ObjectiveParams, Pipeline, hookimpl, read_recipes, state_sse
from pivf.plugins.objectives import RECIPES

__all__ = ["PositionsObjective", "pivf_objectives", "shift_frames"]


class PositionsParams(ObjectiveParams):
    inputs_weight: float = Field(1.0, ge=0, description="weight of the input frames' term (the inferred state rolled "
                                                         "back through the physics against the encoded positions)")
    anti_collapse: Literal["equivariance", "variance"] = Field(
        "equivariance", description="what keeps positions from collapsing: equivariance (shifted frames encode to "
                                    "shifted positions) or variance (VICReg's hinge on their standard deviation)")
    anti_collapse_weight: float = Field(1.0, ge=0, description="weight of the anti-collapse term")
    max_shift: int = Field(2, ge=1, description="equivariance: largest shift in pixels, per axis")
    min_std: float = Field(2.0, gt=0, description="variance: the standard deviation in pixels below which a "
                                                  "coordinate is pushed apart")


def shift_frames(frames: Tensor, shifts: Tensor, backdrop: Tensor | None = None) -> Tensor:
    """frames (B, T, C, H, W) moved by ``shifts`` (B, 2) whole pixels (x right, y down), what leaves the
    image dropped and the uncovered border left empty; with a ``backdrop`` (1, C, H, W) the difference
    from it is moved, so the objects move over an unmoved backdrop."""
    base = torch.zeros_like(frames[:1, :1]) if backdrop is None else backdrop.to(frames)[None]
    content = frames - base
    pad = int(shifts.abs().max())
    height, width = frames.shape[-2:]
    padded = F.pad(content.flatten(0, 1), (pad, pad, pad, pad)).unflatten(0, frames.shape[:2])
    moved = torch.stack([padded[i, ..., pad - int(dy):pad - int(dy) + height, pad - int(dx):pad - int(dx) + width]
                         for i, (dx, dy) in enumerate(shifts.tolist())])
    return moved + base


class PositionsObjective(Objective[PositionsParams]):
    """Fit the physics to encoded positions, decoder-free (see the module docs)."""

    name = "positions"
    description = "decoder-free: rolled-out vs encoded object positions, kept on the objects by shift equivariance"
    states = ("objects",)
    headline = ("pred", "extrap", "spread")
    recipes = read_recipes(RECIPES, "positions", ("fast",))

    def losses(self, pipeline: Pipeline, frames: Tensor, controls: Tensor | None = None) -> dict[str, Tensor]:
        losses, _ = self._position_losses(pipeline, frames, controls)
        return losses

    def training_losses(self, pipeline: Pipeline, frames: Tensor, step: int,
                        controls: Tensor | None = None) -> dict[str, Tensor]:
        losses, positions = self._position_losses(pipeline, frames, controls)
        p = self.params
        if p.anti_collapse == "equivariance":
            losses["equivariance"] = self._equivariance(pipeline, frames[:, : self.input_steps],
                                                        positions[:, : self.input_steps])
        else:
            std = positions.flatten(0, 1).std(dim=0)  # (N, D) over the batch's frames
            losses["variance"] = F.relu(p.min_std - std).pow(2).sum()
        losses["loss"] = losses["loss"] + p.anti_collapse_weight * losses[p.anti_collapse]
        return losses

    def _position_losses(self, pipeline: Pipeline, frames: Tensor,
                         controls: Tensor | None) -> tuple[dict[str, Tensor], Tensor]:
        """pred, extrap, inputs, spread and their weighted sum; and the encoded positions (B, T, N, D)."""
        encoded = pipeline.encode(frames, refine=controls is None)
        positions = encoded.positions
        if positions is None:
            raise ValueError(f"encoder '{pipeline.encoder.name}' gives no per-frame positions; objective "
                             f"'{self.name}' needs an object encoder such as paig_unet")
        q, _ = pipeline.rollout(encoded.q0, encoded.p0, frames.shape[1] - self.input_steps, controls=controls)
        rolled, targets = q[1:].transpose(0, 1), positions[:, self.input_steps:]
        losses = {"pred": state_sse(rolled[:, : self.pred_steps], targets[:, : self.pred_steps])}
        if rolled.shape[1] > self.pred_steps:
            losses["extrap"] = state_sse(rolled[:, self.pred_steps:], targets[:, self.pred_steps:])
        if self.input_steps > 1:
            before = pipeline.backward(encoded.q0, encoded.p0, self.input_steps - 1).transpose(0, 1)
            losses["inputs"] = state_sse(before, positions[:, : self.input_steps - 1].flip(1))
        losses["spread"] = positions.flatten(0, 1).std(dim=0).mean().detach()
        losses["loss"] = losses["pred"] + self.params.inputs_weight * losses.get("inputs", torch.zeros(()))
        return losses, positions

    def _equivariance(self, pipeline: Pipeline, frames: Tensor, positions: Tensor) -> Tensor:
        """Squared distance (px², as ``state_sse``) between the positions of shifted frames and the
        positions shifted."""
        reach = self.params.max_shift
        # drawn on the host: the shifts choose the slices, so on an accelerator a device draw would be
        # read back every step
        shifts = torch.randint(-reach, reach + 1, (frames.shape[0], 2))
        moved = shift_frames(frames, shifts, getattr(pipeline.encoder, "backdrop", None))
        shifted = pipeline.encode(moved, refine=False).positions
        assert shifted is not None  # the same encoder gave positions for the unshifted frames
        return state_sse(shifted, positions + shifts[:, None, None].to(positions))

    def report(self, metrics: dict[str, float]) -> dict[str, float]:
        """Position losses read ``pred_pos_loss``, ``extrap_pos_loss``, ``inputs_pos_loss`` (px²) in
        metrics.json, beside ``spread_px``: PAIG's ``pred_loss`` is in pixel intensities."""
        names = {"spread": "spread_px"}
        return {names.get(key, f"{key}_pos_loss"): value for key, value in metrics.items() if key != "loss"}


@hookimpl
def pivf_objectives() -> list[type]:
    return [PositionsObjective]
