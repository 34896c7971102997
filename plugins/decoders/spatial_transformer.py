"""PAIG's coordinate-consistent spatial-transformer decoder (paig reference §2.5).

Each object has a learnable mask template and content template, placed at its position by an
affine warp whose translation is the position itself, so the decoder cannot move an object away
from where the physics put it. Objects and a learnable background are composited by a softmax over
mask logits, with a constant background logit of 1 and −5 everywhere outside a template.

Coordinate convention: positions are continuous pixel coordinates (x = column, y = row, origin at
the image's top-left corner, pixel i covering [i, i+1)). Warps use ``align_corners=False``, so a
template centred at x lands at exactly x. The original TF code maps x to pixel x·(W−1)/W, which makes
its learned lengths W/(W−1) too large (e.g. spring l = 6.19 for a true 6.0 at 32 px); here they are not.

The warp has no rotation or shear, so bilinear sampling separates by axis: output pixel i of a
row takes source pixel j with the tent weight max(0, 1 − |u_i − j|), u_i its source coordinate,
and the warped template is W_y · T · W_xᵀ, two small matrix products per object instead of
``affine_grid`` and ``grid_sample``. It equals them (``align_corners=False``, zero padding) to
rounding, and its backward is plain matrix products: no ``grid_sample`` atomic adds on a GPU, and no
``affine_grid`` backward for ``torch.compile`` to trip on.
"""
from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor, nn

from pivf.api import Decoder, PluginParams, full_precision, glorot_init, hookimpl, mlp

__all__ = ["MASK_OFFSET", "SpatialTransformerDecoder", "pivf_decoders"]

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
    image_size: int = Field(32, ge=8, description="frame height and width in pixels (data.image_size)")
    channels: int = Field(3, ge=1, description="colour channels of the frames (data.channels)")
    n_objects: int = Field(2, ge=1, description="objects in the scene (data.n_objects)")
    template_size: int | None = Field(None, ge=2, description="template side; default image_size // 2")
    sigma: float = Field(1.0, gt=0, description="initial scale of the warp (learned); 1 magnifies templates 2×")
    learn_sigma: bool = Field(True, description="learn the warp's scale; false keeps sigma")


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
        joint = torch.cat([self.mask_template() + MASK_OFFSET, torch.sigmoid(self.content_template())], dim=1)
        weights = sampling_weights(q, self.sigma.to(q.dtype), self.params.image_size, self.template_size)
        columns, rows = weights[..., 0, :, :], weights[..., 1, :, :]  # (B, N, size, t) for x and for y
        across = joint.to(q.dtype) @ columns.transpose(-1, -2).unsqueeze(2)  # (B, N, 1+C, t, size)
        return rows.unsqueeze(2) @ across

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
        """positions (B, N, 2) → frames (B, C, H, W), in float32 even under bfloat16 autocast: the
        sampling weights resolve sub-pixel positions, and this decoder is a small part of a step."""
        with torch.autocast(q.device.type, enabled=False):
            return self._render(full_precision(q))

    def _render(self, q: Tensor) -> Tensor:
        # split, not indexing: the backward of a split is one concatenation, where an index's or a
        # slice's backward fills a zero tensor the size of the whole input
        mask_logits, contents = self.warp(q).split([1, self.params.channels], dim=2)
        mask_logits = mask_logits.squeeze(2) - MASK_OFFSET  # exactly −5 outside each template
        background_logit = torch.full_like(mask_logits[:, :1], BACKGROUND_LOGIT)
        masks = torch.softmax(torch.cat([mask_logits, background_logit], dim=1), dim=1)
        object_masks, background_mask = masks.split([mask_logits.shape[1], 1], dim=1)
        background = torch.sigmoid(self.background()).to(q.dtype)
        return (object_masks.unsqueeze(2) * contents).sum(1) + background_mask * background


def sampling_weights(q: Tensor, sigma: Tensor, size: int, source: int) -> Tensor:
    """Bilinear weights (B, N, 2, size, source) of each axis: output pixel i of an object at q
    samples template pixel j with max(0, 1 − |u_i − j|), where in normalised coordinates (−1 to 1,
    pixel centres at (2i + 1)/size − 1) the template point is σ·(output point − object centre)."""
    centre = 2 * q / size - 1  # (B, N, 2)
    outputs = (2 * torch.arange(size, dtype=q.dtype, device=q.device) + 1) / size - 1
    normalised = sigma * (outputs - centre.unsqueeze(-1))  # (B, N, 2, size)
    u = ((normalised + 1) * source - 1) / 2  # in template pixels
    j = torch.arange(source, dtype=q.dtype, device=q.device)
    return (1 - (u.unsqueeze(-1) - j).abs()).clamp_min(0)


@hookimpl
def pivf_decoders() -> list[type]:
    return [SpatialTransformerDecoder]
