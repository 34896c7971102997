"""PAIG's coordinate-consistent spatial-transformer decoder (paig reference §2.5).

Each object has a learnable mask template and content template, placed at its position by an
affine warp whose translation is the position itself, so the decoder cannot move an object away
from where the physics put it. Objects and a learnable background are composited by a softmax over
mask logits, with a constant background logit of 1 and −5 everywhere outside a template.

Coordinate convention: positions are continuous pixel coordinates (x = column, y = row, origin at
the image's top-left corner, pixel i covering [i, i+1)). Warps use ``align_corners=False``, so a
template centred at x lands at exactly x. The original TF code maps x to pixel x·(W−1)/W, which makes
its learned lengths W/(W−1) too large (e.g. spring l = 6.19 for a true 6.0 at 32 px); here they are not.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from pivf.core.hookspecs import hookimpl
from pivf.core.model import Decoder
from pivf.core.nn import glorot_init, mlp
from pivf.core.plugin import PluginParams

MASK_OFFSET = 5.0
BACKGROUND_LOGIT = 1.0


class NetworkVariable(nn.Module):
    """A tensor produced by a tiny MLP from a constant input, as PAIG parameterises its templates;
    the reparameterisation changes how fast and how smoothly they learn."""

    def __init__(self, shape: tuple[int, ...], hidden: int = 200) -> None:
        super().__init__()
        self.shape = shape
        self.register_buffer("seed", torch.ones(1, 10))
        self.net = mlp([10, hidden, math.prod(shape)], nn.Tanh)

    def forward(self) -> Tensor:
        return self.net(self.seed).reshape(self.shape)

    @torch.no_grad()
    def reset(self, index: int, value: Tensor | None = None) -> None:
        """Re-initialise the output units of ``tensor[index]`` (Glorot-uniform over the whole layer's
        fans), or, given ``value`` (broadcast to ``shape[1:]``), make them output exactly that."""
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        per_entry = last.out_features // self.shape[0]
        rows = slice(index * per_entry, (index + 1) * per_entry)
        if value is None:
            bound = math.sqrt(6.0 / (last.in_features + last.out_features))
            last.weight[rows].uniform_(-bound, bound)
            last.bias[rows] = 0.0
        else:
            last.weight[rows] = 0.0
            last.bias[rows] = value.to(last.bias).expand(self.shape[1:]).flatten()


class SpatialTransformerParams(PluginParams):
    image_size: int = Field(32, ge=8)
    channels: int = Field(3, ge=1)
    n_objects: int = Field(2, ge=1)
    template_size: int | None = Field(None, ge=2, description="template side; default image_size // 2")
    sigma: float = Field(1.0, gt=0, description="initial scale of the warp (learned); 1 magnifies templates 2×")
    learn_sigma: bool = True


class SpatialTransformerDecoder(Decoder[SpatialTransformerParams]):
    name = "spatial_transformer"
    description = "PAIG: coordinate-consistent spatial transformer with learnable templates and softmax compositing"
    states = ("objects",)

    def __init__(self, params: SpatialTransformerParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        size = p.template_size or p.image_size // 2
        self.template_size = size
        self.mask_template = NetworkVariable((p.n_objects, 1, size, size))
        self.content_template = NetworkVariable((p.n_objects, p.channels, size, size))
        self.background = NetworkVariable((1, p.channels, p.image_size, p.image_size))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(p.sigma)), requires_grad=p.learn_sigma)
        glorot_init(self)

    @property
    def sigma(self) -> Tensor:
        return self.log_sigma.exp()

    def templates(self) -> tuple[Tensor, Tensor]:
        """Mask (N, 1, t, t) and content (N, C, t, t) templates, both in [0, 1]."""
        return torch.sigmoid(self.mask_template()), torch.sigmoid(self.content_template())

    def warp(self, q: Tensor) -> Tensor:
        """Each object's [mask logit + 5, content] template placed at its position: (B, N, 1+C, H, W)."""
        b, n, _ = q.shape
        size = self.params.image_size
        centre = 2 * q / size - 1  # normalised output coordinates of each object
        sigma = self.sigma.to(q.dtype)
        theta = torch.zeros(b * n, 2, 3, dtype=q.dtype, device=q.device)
        theta[:, 0, 0] = sigma
        theta[:, 1, 1] = sigma
        theta[:, :, 2] = (-sigma * centre).reshape(b * n, 2)
        joint = torch.cat([self.mask_template() + MASK_OFFSET, torch.sigmoid(self.content_template())], dim=1)
        joint = joint.to(q.dtype).unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(b * n, *joint.shape[1:])
        grid = F.affine_grid(theta, [b * n, joint.shape[1], size, size], align_corners=False)
        warped = F.grid_sample(joint, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return warped.reshape(b, n, *warped.shape[1:])

    def reset_object(self, index: int, colour: Tensor | None = None) -> bool:
        """New templates for object ``index``; with a ``colour`` hint its content starts that colour
        (scaled to its brightest channel), so the slot is drawn as what the reconstruction misses."""
        self.mask_template.reset(index)
        if colour is None:
            self.content_template.reset(index)
        else:
            shade = (colour / colour.max().clamp_min(1e-12)).clamp(0.05, 0.95)
            self.content_template.reset(index, torch.logit(shade).reshape(-1, 1, 1))
        return True

    def forward(self, q: Tensor) -> Tensor:
        """positions (B, N, 2) → frames (B, C, H, W)."""
        warped = self.warp(q)
        mask_logits = warped[:, :, 0] - MASK_OFFSET  # exactly −5 outside each template
        contents = warped[:, :, 1:]
        background_logit = torch.full_like(mask_logits[:, :1], BACKGROUND_LOGIT)
        masks = torch.softmax(torch.cat([mask_logits, background_logit], dim=1), dim=1)
        background = torch.sigmoid(self.background()).to(q.dtype)
        return (masks[:, :-1].unsqueeze(2) * contents).sum(1) + masks[:, -1:] * background


@hookimpl
def pivf_decoders() -> list[type]:
    return [SpatialTransformerDecoder]
