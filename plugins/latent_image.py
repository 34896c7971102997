"""The geometry an encoder and a decoder of a latent image state share (HGN's ``hgn`` encoder and
``hgn_conv`` decoder): images of side latent_size·2^k, and a state of latent_channels × latent_size²
maps (HGN) or of latent_channels numbers (``latent: vector``, HGN++), which a linear layer takes from
and to the latent_size maps.

``angles`` says how many leading entries of a vector q are angles, coordinates on a circle (a
pendulum's swing): the encoder infers each as the direction of a point it places in the plane, and
everything that reads q (the decoder, a learned potential) reads each angle as its cosine and sine,
so it is 2π-periodic there. Without it a pendulum swinging over the top runs its q past anything
the decoder saw in training, and the rollout fails there.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from pivf.api import PluginParams

__all__ = ["LatentImageParams", "check_angles", "circle_features"]


class LatentImageParams(PluginParams):
    """The geometry HGN's encoder and decoder share: images of side latent_size·2^k."""

    #: one latent state for the encoder, the Hamiltonian and the decoder (core/kernel/config.py checks it)
    shared_fields: ClassVar[tuple[str, ...]] = ("latent_channels", "latent_size", "latent", "angles")

    image_size: int = Field(32, ge=2, description="frame height and width in pixels (data.image_size)")
    channels: int = Field(3, ge=1, description="colour channels of the frames (data.channels)")
    latent_channels: int = Field(16, ge=1, description="channels of q (and of p)")
    latent_size: int = Field(4, ge=2, description="spatial side of the latent maps (q and p themselves "
                                                   "unless latent is vector; a conv Hamiltonian needs ≥ 2)")
    latent: Literal["maps", "vector"] = Field(
        "maps", description="maps: q, p of shape (latent_channels, latent_size, latent_size) (HGN); "
                            "vector: latent_channels numbers each, linear to and from the maps (HGN++)")
    angles: int = Field(0, ge=0, description="vector: how many leading entries of q are angles (read through their "
                                             "cosine and sine, so periodic)")

    @model_validator(mode="after")
    def _image_is_latent_doubled(self) -> LatentImageParams:
        check_angles(self.angles, self.latent, self.latent_channels)
        ratio, rest = divmod(self.image_size, self.latent_size)
        if rest or ratio < 2 or ratio & (ratio - 1):
            raise ValueError(f"image_size must be latent_size·2^k with k ≥ 1, got image_size {self.image_size} "
                             f"and latent_size {self.latent_size}")
        return self

    @property
    def doublings(self) -> int:
        """k in image_size = latent_size·2^k: stride-2 convs in, upsampling blocks out."""
        return (self.image_size // self.latent_size).bit_length() - 1


def check_angles(angles: int, latent: str, latent_channels: int) -> None:
    """Angles are entries of a vector latent: refuse them over maps or past the vector's end."""
    if angles and latent != "vector":
        raise ValueError(f"angles are entries of a vector latent; with latent {latent} angles must be 0")
    if angles > latent_channels:
        raise ValueError(f"angles ({angles}) cannot exceed latent_channels ({latent_channels})")


def circle_features(q: Tensor, angles: int) -> Tensor:
    """(..., C) → (..., C + angles): the first ``angles`` entries as their cosines and sines, the rest
    as they are. Whatever reads q through this is 2π-periodic in those entries."""
    if not angles:
        return q
    theta = q[..., :angles]
    return torch.cat((theta.cos(), theta.sin(), q[..., angles:]), dim=-1)
