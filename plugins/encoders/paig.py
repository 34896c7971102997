"""PAIG's localisation encoder and velocity estimator (paig reference §2.1-2.2).

A U-Net turns each frame into one mask per object plus a constant-logit background; each masked
image goes through a localisation MLP shared by all objects, whose output is squashed into the image
range. A second MLP, also shared by objects, estimates each object's velocity at the last input frame
from its first ``input_steps`` positions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from pivf.core.hookspecs import hookimpl
from pivf.core.model import Encoder, EncoderOutput
from pivf.core.nn import glorot_init, mlp
from pivf.core.plugin import PluginParams

#: constant logit of the background channel in the mask softmax (1, not 0, as in the original)
BACKGROUND_LOGIT = 1.0


def _conv(fan_in: int, fan_out: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(fan_in, fan_out, 3, padding=1)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """PAIG's (shallow) U-Net: ``depth`` poolings, bilinear upsampling, every upsampling conv 2·base wide.

    depth=2, base=8 is ``shallow_unet`` (images < 40 px); depth=3, base=16 is ``unet``. The last 1×1
    conv is linear: its outputs are mask logits.
    """

    def __init__(self, in_channels: int, out_channels: int, base: int, depth: int) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        fan_in = in_channels
        for width in widths:
            self.down.append(nn.Sequential(_conv(fan_in, width), _conv(width, width)))
            fan_in = width
        self.up_proj = nn.ModuleList()
        self.up_merge = nn.ModuleList()
        for skip in reversed(widths[:-1]):
            self.up_proj.append(_conv(fan_in, 2 * base, relu=False))
            self.up_merge.append(nn.Sequential(_conv(2 * base + skip, skip), _conv(skip, skip)))
            fan_in = skip
        self.head = nn.Conv2d(fan_in, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for proj, merge in zip(self.up_proj, self.up_merge):
            skip = skips.pop()
            x = proj(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = merge(torch.cat([x, skip], dim=1))
        return self.head(x)


class PaigEncoderParams(PluginParams):
    image_size: int = Field(32, ge=8)
    channels: int = Field(3, ge=1)
    n_objects: int = Field(2, ge=1)
    dim: int = Field(2, ge=1, le=2, description="coordinates per object")
    input_steps: int = Field(4, ge=1, description="frames the velocity MLP sees")
    unet_base: int | None = Field(None, ge=1, description="U-Net width; default 8 below 40 px, else 16")
    loc_hidden: int = Field(200, ge=1)
    vel_hidden: int = Field(100, ge=1)
    vel_layers: int = Field(2, ge=1, description="hidden tanh layers of the velocity MLP")


class PaigUNetEncoder(Encoder):
    name = "paig_unet"
    description = "PAIG: U-Net object masks + shared localisation MLP + velocity MLP (object coordinates)"
    Params = PaigEncoderParams
    states = ("objects",)

    def __init__(self, params: PaigEncoderParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        small = p.image_size < 40
        base = p.unet_base or (8 if small else 16)
        self.unet = UNet(p.channels, p.n_objects, base, depth=2 if small else 3)
        self.pool = 1 if small else 2  # the 64-px branch averages 2×2 before the MLP
        features = p.channels * (p.image_size // self.pool) ** 2
        self.localise = mlp([features, p.loc_hidden, p.loc_hidden, p.dim], nn.ReLU)
        self.velocity = mlp([p.input_steps * p.dim] + [p.vel_hidden] * p.vel_layers + [p.dim], nn.Tanh)
        glorot_init(self)

    def masks(self, images: Tensor) -> Tensor:
        """Softmax masks (M, N+1, H, W) over the objects and a constant background logit."""
        logits = self.unet(images)
        background = torch.full_like(logits[:, :1], BACKGROUND_LOGIT)
        return torch.softmax(torch.cat([logits, background], dim=1), dim=1)

    def locate(self, frames: Tensor) -> Tensor:
        """frames (B, T, C, H, W) → positions (B, T, N, dim) in pixel units, inside (0, W)."""
        b, t, c, h, w = frames.shape
        images = frames.reshape(b * t, c, h, w)
        masks = self.masks(images)[:, :-1]  # (M, N, H, W)
        masked = masks.unsqueeze(2) * images.unsqueeze(1)  # (M, N, C, H, W)
        if self.pool > 1:
            masked = F.avg_pool2d(masked.flatten(0, 1), self.pool).unflatten(0, masks.shape[:2])
        raw = self.localise(masked.flatten(2))  # (M, N, dim)
        size = self.params.image_size
        return (torch.tanh(raw) * size / 2 + size / 2).reshape(b, t, self.params.n_objects, -1)

    def estimate_velocity(self, positions: Tensor) -> Tensor:
        """positions (B, T_in, N, dim) → velocity at the last input frame (B, N, dim)."""
        b, t_in, n, d = positions.shape
        if t_in == 1:  # no motion to see: the original starts at rest
            return torch.zeros_like(positions[:, 0])
        per_object = positions.permute(0, 2, 1, 3).reshape(b * n, t_in * d)
        return self.velocity(per_object).reshape(b, n, d)

    def forward(self, frames: Tensor) -> EncoderOutput:
        t_in = self.params.input_steps
        positions = self.locate(frames)
        return EncoderOutput(q0=positions[:, t_in - 1], p0=self.estimate_velocity(positions[:, :t_in]),
                             positions=positions)


@hookimpl
def pivf_encoders() -> list[type]:
    return [PaigUNetEncoder]
