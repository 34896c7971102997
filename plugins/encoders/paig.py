"""PAIG's localisation encoder and velocity estimator (paig reference §2.1-2.2).

A U-Net turns each frame into one logit map per object (plus, by default, a 1×1 convolution of the
image itself, so a slot can key on an object's colour before the U-Net has learned features). Two
coordinate heads read positions off it:

- ``soft_argmax`` (default): a softmax over each object's map taken over the pixels, whose expected
  pixel coordinate is the position. Translation-equivariant and exact in pixel units from the first
  step, so objects are found in a few hundred steps instead of thousands.
- ``mlp`` (the original): the maps become masks by a softmax over the objects and a constant-logit
  background; each masked image goes through a localisation MLP shared by all objects, whose output
  is squashed into the image range.

Two velocity estimators give each object's velocity at the last input frame from its first
``input_steps`` positions:

- ``differences`` (default): a learned linear combination of the frame-to-frame displacements
  divided by ``dt``, started at the last backward difference, plus a small MLP correction started at
  zero, so it is a sensible estimate before any training.
- ``mlp`` (the original): an MLP on the raw positions, shared by objects.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from pivf.api import (
    Backward,
    Encoder,
    EncoderOutput,
    PluginParams,
    fit_velocity,
    full_precision,
    glorot_init,
    hookimpl,
    largest_step_last_sign,
    mlp,
)
from pivf.plugins.discovery import departure_colours

__all__ = ["PaigUNetEncoder", "pivf_encoders"]

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
        """Logits, in float32 even where the features ran under bfloat16 autocast."""
        features = self.features(x)
        with torch.autocast(x.device.type, enabled=False):
            return self.head(full_precision(features))

    def features(self, x: Tensor) -> Tensor:
        """The maps the last 1×1 conv turns into logits."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for proj, merge in zip(self.up_proj, self.up_merge, strict=True):
            skip = skips.pop()
            x = proj(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = merge(torch.cat([x, skip], dim=1))
        return x


class SoftArgmaxHead(nn.Module):
    """Logit maps (M, N, H, W) → expected pixel coordinates (M, N, 2) under a spatial softmax."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        centres = torch.arange(image_size, dtype=torch.float32) + 0.5  # pixel i covers [i, i+1)
        self.register_buffer("centres", centres, persistent=False)

    def forward(self, logits: Tensor, images: Tensor) -> Tensor:
        weights = torch.softmax(logits.flatten(2), dim=-1).unflatten(-1, logits.shape[-2:])
        x = (weights.sum(-2) * self.centres).sum(-1)
        y = (weights.sum(-1) * self.centres).sum(-1)
        return torch.stack((x, y), dim=-1)


class MaskedMLPHead(nn.Module):
    """PAIG's head: per-pixel softmax masks over objects and background, masked images → MLP → tanh."""

    def __init__(self, image_size: int, channels: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.pool = 1 if image_size < 40 else 2  # the 64-px branch averages 2×2 before the MLP
        self.mlp = mlp([channels * (image_size // self.pool) ** 2, hidden, hidden, dim], nn.ReLU)

    def forward(self, logits: Tensor, images: Tensor) -> Tensor:
        background = torch.full_like(logits[:, :1], BACKGROUND_LOGIT)
        masks = torch.softmax(torch.cat([logits, background], dim=1), dim=1)[:, :-1]  # (M, N, H, W)
        masked = masks.unsqueeze(2) * images.unsqueeze(1)  # (M, N, C, H, W)
        if self.pool > 1:
            masked = F.avg_pool2d(masked.flatten(0, 1), self.pool).unflatten(0, masks.shape[:2])
        raw = self.mlp(masked.flatten(2))
        return torch.tanh(raw) * self.image_size / 2 + self.image_size / 2


class DifferenceVelocity(nn.Module):
    """Velocity from displacements: linear in Δq/dt (starts as the last backward difference) plus
    an MLP correction (starts at zero) for what a linear rule misses, e.g. a bounce between frames."""

    def __init__(self, input_steps: int, dim: int, hidden: int, layers: int, dt: float, scale: float) -> None:
        super().__init__()
        self.dt, self.scale = dt, scale
        self.combine = nn.Linear(input_steps - 1, 1, bias=False)
        self.correct = mlp([(input_steps - 1) * dim] + [hidden] * layers + [dim], nn.Tanh)
        glorot_init(self)
        with torch.no_grad():
            self.combine.weight.zero_()
            self.combine.weight[0, -1] = 1.0
            last = self.correct[-1]
            assert isinstance(last, nn.Linear)
            last.weight.zero_()

    def forward(self, positions: Tensor) -> Tensor:
        """positions (B, T_in, N, dim) → (B, N, dim)."""
        b, _, n, d = positions.shape
        rates = (positions[:, 1:] - positions[:, :-1]) / self.dt  # (B, T_in−1, N, dim)
        linear = self.combine(rates.permute(0, 2, 3, 1)).squeeze(-1)
        features = rates.permute(0, 2, 1, 3).reshape(b * n, -1) / self.scale
        return linear + self.correct(features).reshape(b, n, d) * self.scale


class MLPVelocity(nn.Module):
    """PAIG's estimator: an MLP on the raw positions of each object, shared by objects."""

    def __init__(self, input_steps: int, dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.mlp = mlp([input_steps * dim] + [hidden] * layers + [dim], nn.Tanh)

    def forward(self, positions: Tensor) -> Tensor:
        b, t_in, n, d = positions.shape
        return self.mlp(positions.permute(0, 2, 1, 3).reshape(b * n, t_in * d)).reshape(b, n, d)


class PaigEncoderParams(PluginParams):
    image_size: int = Field(32, ge=8, description="frame height and width in pixels (data.image_size)")
    channels: int = Field(3, ge=1, description="colour channels of the frames (data.channels)")
    n_objects: int = Field(2, ge=1, description="objects in the scene (data.n_objects)")
    dim: int = Field(2, ge=1, le=2, description="coordinates per object")
    input_steps: int = Field(4, ge=1, description="frames the velocity MLP sees")
    dt: float = Field(0.3, gt=0, description="time between frames (filled in from the data)")
    coordinates: Literal["soft_argmax", "mlp"] = Field(
        "soft_argmax", description="coordinate head: spatial soft-argmax of each object's map, or PAIG's MLP")
    velocity: Literal["differences", "mlp"] = Field(
        "differences", description="velocity estimator: on displacements (starts as a finite difference), or PAIG's "
                                   "MLP")
    colour_path: float = Field(
        20.0, ge=0, description="gain of a 1×1 convolution from the image straight to each object's map, "
                               "so a slot can key on an object's colour from the start (0: off, as the original)")
    background: Literal["none", "median"] = Field(
        "none", description="subtract a fixed camera's backdrop, the per-pixel median of the training frames, "
                            "before locating objects (for scenes that are not objects on black)")
    unet_base: int | None = Field(None, ge=1, description="U-Net width; default 8 below 40 px, else 16")
    loc_hidden: int = Field(200, ge=1, description="width of the MLP coordinate head")
    vel_hidden: int = Field(100, ge=1, description="width of the velocity MLP")
    vel_layers: int = Field(2, ge=1, description="hidden tanh layers of the velocity MLP")
    cpu_batch: int = Field(200, ge=1, description="images localised at a time on a CPU (a GPU takes all at once)")
    velocity_fit: int = Field(0, ge=0, le=10, description="Gauss-Newton steps that refine the estimate to the "
                              "velocity whose backward rollout through the physics passes through the encoded "
                              "input positions (core/kernel/velocity_fit.py; 0: off)")


class PaigUNetEncoder(Encoder[PaigEncoderParams]):
    name = "paig_unet"
    description = ("PAIG: U-Net object maps + coordinate head (soft-argmax or MLP) + velocity estimator "
                   "(object coordinates)")
    states = ("objects",)
    #: the fixed camera's backdrop, a buffer only with ``background="median"``
    backdrop: Tensor

    def __init__(self, params: PaigEncoderParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        small = p.image_size < 40
        base = p.unet_base or (8 if small else 16)
        self.unet = UNet(p.channels, p.n_objects, base, depth=2 if small else 3)
        self.colour = nn.Conv2d(p.channels, p.n_objects, 1) if p.colour_path > 0 else None
        self.head = (SoftArgmaxHead(p.image_size) if p.coordinates == "soft_argmax"
                     else MaskedMLPHead(p.image_size, p.channels, p.loc_hidden, p.dim))
        glorot_init(self)
        if p.background == "median":
            self.register_buffer("backdrop", torch.zeros(1, p.channels, p.image_size, p.image_size))
        self.velocity = (  # one input frame shows no motion: the estimate is zero whichever is chosen
            DifferenceVelocity(p.input_steps, p.dim, p.vel_hidden, p.vel_layers, p.dt, p.image_size)
            if p.velocity == "differences" and p.input_steps > 1
            else glorot_init(MLPVelocity(p.input_steps, p.dim, p.vel_hidden, p.vel_layers)))

    @torch.no_grad()
    def prepare(self, frames: Tensor) -> None:
        """With ``background="median"``: the backdrop is each pixel's median over the given training
        frames. A fixed camera sees its backdrop in most frames at every
        pixel, so objects, lights and textures that do not move fall out of the encoder's input.
        Then each slot's colour path starts pointing at one of the colour changes objects make
        against the backdrop (``departure_colours``): a random one may respond more to the wall than
        to the bob, and the soft-argmax then points away from it."""
        if self.params.background != "median":
            return
        images = frames.flatten(0, 1).to(self.backdrop)
        self.backdrop.copy_(images.median(dim=0, keepdim=True).values)
        colours = departure_colours(images - self.backdrop, self.params.n_objects)
        if colours is not None and self.colour is not None:
            for index, colour in enumerate(colours):
                self.reset_object(index, colour)

    def locate(self, frames: Tensor) -> Tensor:
        """frames (B, T, C, H, W) → positions (B, T, N, dim) in pixel units."""
        b, t, c, h, w = frames.shape
        images = frames.reshape(b * t, c, h, w)
        if self.params.background == "median":
            images = images - self.backdrop.to(images.dtype)
        # channels-last on purpose: on a CPU oneDNN's convolutions run about twice as fast so, and a
        # batch's layout must not depend on whether it is a slice of longer stored sequences
        images = images.contiguous(memory_format=torch.channels_last)
        # On a CPU a few hundred images at a time: their activations stay in the caches, and a
        # 30-frame test batch or a training batch of 1000 images runs as fast per frame as 200 do
        # (1.3x faster than in one call, docs/BENCHMARKS.md).
        chunks = images.split(self.params.cpu_batch) if images.device.type == "cpu" else (images,)
        positions = torch.cat([self._locate_images(chunk) for chunk in chunks])
        return positions.reshape(b, t, self.params.n_objects, -1)

    def _locate_images(self, images: Tensor) -> Tensor:
        """Channels-last images (n, C, H, W) → positions (n, N, dim). Under bfloat16 autocast only the
        U-Net's feature convolutions take it: logits and coordinates stay float32, since velocities
        are differences of sub-pixel positions and bfloat16 keeps 8 bits of mantissa."""
        logits = self.unet(images)
        with torch.autocast(images.device.type, enabled=False):
            images = full_precision(images)
            if self.colour is not None:
                logits = logits + self.params.colour_path * self.colour(images)
            return self.head(logits, images)

    def estimate_velocity(self, positions: Tensor) -> Tensor:
        """positions (B, T_in, N, dim) → velocity at the last input frame (B, N, dim)."""
        if positions.shape[1] == 1:  # no motion to see: the original starts at rest
            return torch.zeros_like(positions[:, 0])
        return self.velocity(positions)

    @torch.no_grad()
    def reset_object(self, index: int, colour: Tensor | None = None) -> bool:
        """Object ``index`` owns one output channel of the U-Net's last (1×1) convolution and of the
        colour path: new random weights there give its slot another colour and feature preference;
        with a ``colour`` hint the colour path starts pointing at that colour instead."""
        for conv in (self.unet.head, self.colour):
            if conv is not None:
                bound = math.sqrt(6.0 / (conv.in_channels + conv.out_channels))
                conv.weight[index].uniform_(-bound, bound)
                if conv.bias is not None:
                    conv.bias[index] = 0.0
        if colour is not None and self.colour is not None:
            direction = colour.to(self.colour.weight) / colour.norm().clamp_min(1e-12)
            self.colour.weight[index] = direction.reshape(-1, 1, 1)
        return True

    def refine_velocity(self, encoded: EncoderOutput, backward: Backward) -> EncoderOutput:
        p = self.params
        if p.velocity_fit == 0 or p.input_steps < 2 or encoded.positions is None:
            return encoded
        inputs = encoded.positions[:, :p.input_steps]
        velocity = fit_velocity(backward, inputs, [encoded.p0, largest_step_last_sign(inputs, p.dt)], p.velocity_fit)
        return replace(encoded, p0=velocity)

    def forward(self, frames: Tensor) -> EncoderOutput:
        t_in = self.params.input_steps
        positions = self.locate(frames)
        with torch.autocast(frames.device.type, enabled=False):  # velocities from positions: float32
            velocity = self.estimate_velocity(positions[:, :t_in])
        return EncoderOutput(q0=positions[:, t_in - 1], p0=velocity, positions=positions)


@hookimpl
def pivf_encoders() -> list[type]:
    return [PaigUNetEncoder]
