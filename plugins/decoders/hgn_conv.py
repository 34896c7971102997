"""HGN's decoder: the latent position q (C, s, s) → an image of side s·2^k, from q alone.

k residual blocks each double the resolution: nearest-neighbour ×2, then two 3×3 convs with leaky
ReLU, plus the upsampled input as a skip (through a 1×1 conv where the widths differ). A 3×3 conv
to the image channels and a sigmoid finish. The skip path stays linear (no squashing after the sum),
so a block can pass its input through unchanged.

On a CPU the frames of a rollout are decoded ``cpu_batch`` images at a time, channels-last: a whole
rollout's 64-channel activations (batch 16 × 30 frames × 64 × 32² floats, 126 MB per layer) do not
fit in the caches, a few dozen images' do, and oneDNN's convolutions run fastest channels-last.
Together about 2.5× faster, forward and backward (docs/BENCHMARKS.md).

With ``latent: vector`` (HGN++) a linear layer first spreads q (latent_channels numbers) over
``filters`` maps of the latent side, reading each angle of q (``angles``) as its cosine and sine.

Only q is decoded: the image must not see p, or the model could store motion in the picture instead
of in the dynamics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from pivf.api import Decoder, hookimpl
from pivf.plugins.latent_image import LatentImageParams, circle_features

__all__ = ["HgnConvDecoder", "pivf_decoders"]


class HgnDecoderParams(LatentImageParams):
    filters: int = Field(64, ge=1, description="width of every residual block")
    cpu_batch: int = Field(64, ge=1, description="images decoded at a time on a CPU (a GPU decodes all at once)")


class UpsamplingBlock(nn.Module):
    def __init__(self, fan_in: int, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(fan_in, width, 3, padding=1), nn.LeakyReLU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU())
        self.skip = nn.Conv2d(fan_in, width, 1) if fan_in != width else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        if isinstance(self.skip, nn.Identity):
            return self.convs(up) + up
        # a 1×1 conv commutes with nearest upsampling: it runs on a quarter of the pixels
        return self.convs(up) + F.interpolate(self.skip(x), scale_factor=2, mode="nearest")


class HgnConvDecoder(Decoder[HgnDecoderParams]):
    name = "hgn_conv"
    description = "HGN: residual upsampling conv decoder from the latent q alone"
    states = ("latent",)

    def __init__(self, params: HgnDecoderParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        vector = p.latent == "vector"
        self.expand = nn.Sequential(nn.Linear(p.latent_channels + p.angles, p.filters * p.latent_size**2),
                                    nn.Unflatten(1, (p.filters, p.latent_size, p.latent_size))) if vector else None
        widths = [p.filters if vector else p.latent_channels] + [p.filters] * p.doublings
        self.blocks = nn.Sequential(*(UpsamplingBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))
        self.out = nn.Conv2d(p.filters, p.channels, 3, padding=1)

    def forward(self, q: Tensor) -> Tensor:
        maps = q if self.expand is None else self.expand(circle_features(q, self.params.angles))
        if maps.device.type != "cpu":
            return self._decode(maps)
        maps = maps.contiguous(memory_format=torch.channels_last)
        return torch.cat([self._decode(chunk) for chunk in maps.split(self.params.cpu_batch)])

    def _decode(self, maps: Tensor) -> Tensor:
        return torch.sigmoid(self.out(self.blocks(maps)))


@hookimpl
def pivf_decoders() -> list[type]:
    return [HgnConvDecoder]
