"""The geometry an encoder and a decoder of a latent image state share (HGN's ``hgn`` encoder and
``hgn_conv`` decoder): images of side latent_size·2^k, and a state of latent_channels × latent_size²
maps (HGN) or of latent_channels numbers (``latent: vector``, HGN++), which a linear layer takes from
and to the latent_size maps."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pivf.core.plugin import PluginParams


class LatentImageParams(PluginParams):
    """The geometry HGN's encoder and decoder share: images of side latent_size·2^k."""

    image_size: int = Field(32, ge=2)
    channels: int = Field(3, ge=1)
    latent_channels: int = Field(16, ge=1, description="channels of q (and of p)")
    latent_size: int = Field(4, ge=2, description="spatial side of the latent maps (q and p themselves "
                                                   "unless latent is vector; a conv Hamiltonian needs ≥ 2)")
    latent: Literal["maps", "vector"] = Field(
        "maps", description="maps: q, p of shape (latent_channels, latent_size, latent_size) (HGN); "
                            "vector: latent_channels numbers each, linear to and from the maps (HGN++)")

    @model_validator(mode="after")
    def _image_is_latent_doubled(self) -> LatentImageParams:
        ratio, rest = divmod(self.image_size, self.latent_size)
        if rest or ratio < 2 or ratio & (ratio - 1):
            raise ValueError(f"image_size must be latent_size·2^k with k ≥ 1, got image_size {self.image_size} "
                             f"and latent_size {self.latent_size}")
        return self

    @property
    def doublings(self) -> int:
        """k in image_size = latent_size·2^k: stride-2 convs in, upsampling blocks out."""
        return (self.image_size // self.latent_size).bit_length() - 1
