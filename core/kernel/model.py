"""Contracts of the vision plugins around the physics: encoders infer the initial state from
frames, decoders render states back into frames."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from pivf.core.kernel.physics import StateKind
from pivf.core.kernel.plugin import P, Plugin
from pivf.core.kernel.velocity_fit import Backward

__all__ = ["Decoder", "Encoder", "EncoderOutput"]


@dataclass
class EncoderOutput:
    """What the pipeline needs from an encoder.

    ``q0, p0`` start the rollout at the last input frame. ``positions`` (B, T, N, D) are per-frame
    object positions for the reconstruction loss (None for latent encoders). ``kl`` is the KL term
    of a variational encoder (None when deterministic).
    """

    q0: Tensor
    p0: Tensor
    positions: Tensor | None = None
    kl: Tensor | None = None


class Encoder(Plugin[P], nn.Module):
    """frames (B, T, C, H, W) in [0, 1] → initial state at the last input frame.

    ``states`` lists the state kinds it produces. Params named ``image_size``, ``channels``,
    ``n_objects`` or ``input_steps`` are filled in from the data by the pipeline.
    """

    kind: ClassVar[str] = "encoder"
    required_methods = (("forward",),)
    states: ClassVar[tuple[StateKind, ...]] = ("objects",)

    def forward(self, frames: Tensor) -> EncoderOutput:
        raise NotImplementedError

    def prepare(self, frames: Tensor) -> None:
        """Data-dependent initialisation, once before a new run's first step, from a sample of its
        training frames (float (N, T, C, H, W) in [0, 1]): a fixed camera's backdrop, say. Whatever
        it sets must live in parameters or buffers, so checkpoints carry it. Nothing by default."""

    def refine_velocity(self, encoded: EncoderOutput, backward: Backward) -> EncoderOutput:
        """``encoded`` with its velocity corrected through the physics: ``backward(q, p, frames)``
        rolls a state back over the frames before it (core/kernel/velocity_fit.py). Unchanged by default."""
        return encoded


class Decoder(Plugin[P], nn.Module):
    """state q of shape (B, *state) → frames (B, C, H, W) in [0, 1].

    Params named ``image_size``, ``channels`` or ``n_objects`` are filled in from the data.
    """

    kind: ClassVar[str] = "decoder"
    required_methods = (("forward",),)
    states: ClassVar[tuple[StateKind, ...]] = ("objects",)

    def forward(self, q: Tensor) -> Tensor:
        raise NotImplementedError
