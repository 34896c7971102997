"""Handwriting-like digit sprites and a natural-looking background, made procedurally.

The original two-digit task used MNIST digits over a CIFAR-10 photo, both downloaded. Nothing here
is downloaded or shipped as data: each digit is a few pen strokes (lines and elliptic arcs)
rasterised with a round pen about as wide as an MNIST stroke, and the background is colour noise
with the 1/f amplitude spectrum of natural photographs, from a fixed seed. Both are deterministic,
so datasets stay reproducible byte for byte.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

#: size of a digit's box in image pixels (MNIST's 28-px box cropped by 3 px on each side)
DIGIT_BOX = 22
#: sprite pixels per image pixel (odd, see ``render.sprite_patches``)
SPRITE_SCALE = 7
#: pen radius in image pixels: MNIST strokes are about 2.5-3 px wide
_PEN = 1.4
#: a glyph's unit square maps to this many pixels, centred in the box (MNIST digits fit in 20×20)
_GLYPH = 16.0

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 24) -> Stroke:
    """Points on an elliptic arc; angles in degrees, 0 = right, 90 = down (image y points down)."""
    angles = [math.radians(start + (end - start) * i / (points - 1)) for i in range(points)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


#: digits as pen strokes in a unit square (x right, y down)
_STROKES: dict[int, list[Stroke]] = {
    0: [_arc(0.5, 0.5, 0.3, 0.48, 0, 360, 40)],
    1: [[(0.35, 0.18), (0.56, 0.02), (0.52, 0.98)]],
    2: [_arc(0.5, 0.3, 0.32, 0.27, 190, 360) + [(0.78, 0.45), (0.14, 0.98), (0.9, 0.96)]],
    3: [_arc(0.48, 0.26, 0.3, 0.24, 200, 450), _arc(0.48, 0.72, 0.34, 0.27, 270, 510)],
    4: [[(0.62, 0.98), (0.64, 0.02), (0.1, 0.66), (0.92, 0.64)]],
    5: [[(0.84, 0.03), (0.32, 0.04), (0.26, 0.45)], _arc(0.5, 0.68, 0.34, 0.3, -145, 150)],
    6: [_arc(0.82, 0.62, 0.62, 0.6, 245, 180, 16), _arc(0.5, 0.7, 0.31, 0.28, 180, 540, 36)],
    7: [[(0.12, 0.04), (0.88, 0.04), (0.38, 0.98)]],
    8: [_arc(0.5, 0.26, 0.26, 0.24, 0, 360, 32), _arc(0.5, 0.73, 0.32, 0.25, 0, 360, 36)],
    9: [_arc(0.5, 0.3, 0.3, 0.28, 0, 360, 36), [(0.8, 0.32), (0.68, 0.98)]],
}


def _distance_to_strokes(points: Tensor, strokes: list[Stroke]) -> Tensor:
    """Distance from each point (P, 2) to the nearest segment of any stroke."""
    segments = torch.tensor([a + b for stroke in strokes for a, b in zip(stroke, stroke[1:])], dtype=torch.float64)
    start, end = segments[:, :2], segments[:, 2:]
    along = end - start
    t = (((points[:, None] - start) * along).sum(-1) / (along**2).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    nearest = start + t[..., None] * along
    return (points[:, None] - nearest).norm(dim=-1).min(dim=1).values


@lru_cache(maxsize=10)
def digit_sprite(digit: int) -> tuple[Tensor, tuple[float, float]]:
    """The digit's ink (S, S) in [0, 1], S = DIGIT_BOX·SPRITE_SCALE, and its centre of mass (x, y).

    Sprites are placed by centre of mass, the way MNIST centres its digits.
    """
    side = DIGIT_BOX * SPRITE_SCALE
    centres = (torch.arange(side, dtype=torch.float64) + 0.5) / SPRITE_SCALE  # image px inside the box
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    offset = (DIGIT_BOX - _GLYPH) / 2
    glyph_points = (torch.stack((xx, yy), -1).reshape(-1, 2) - offset) / _GLYPH
    distance = _distance_to_strokes(glyph_points, _STROKES[digit]) * _GLYPH
    ink = (_PEN - distance).mul(SPRITE_SCALE).add(0.5).clamp(0, 1).reshape(side, side)
    mass = ink.sum()
    pixel = torch.arange(side, dtype=torch.float64) + 0.5
    anchor = (float((ink.sum(0) * pixel).sum() / mass), float((ink.sum(1) * pixel).sum() / mass))
    return ink.float(), anchor


@lru_cache(maxsize=4)
def natural_background(size: int, seed: int = 1) -> Tensor:
    """(size, size, 3) in [0, 1]: colour noise with amplitude ∝ 1/f^1.5, a smooth photo-like texture.

    Luminance carries most of the contrast and colour a little, as in natural images. It is then
    darkened by 0.2 and clipped, as the original did to its CIFAR background.
    """
    generator = torch.Generator().manual_seed(seed)
    freq = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = (freq[:, None] ** 2 + freq[None, :] ** 2).sqrt()
    amplitude = torch.where(radius > 0, radius.clamp_min(1e-9) ** -1.5, torch.zeros((), dtype=torch.float64))
    amplitude = amplitude * (radius < 0.2)  # no finer detail than a 32-px photo shown at `size`
    phases = torch.rand((3, size, size), generator=generator, dtype=torch.float64) * 2 * math.pi
    fields = torch.fft.ifft2(amplitude * torch.polar(torch.ones_like(phases), phases)).real
    fields = (fields - fields.mean((1, 2), keepdim=True)) / fields.std(dim=(1, 2), keepdim=True)
    luminance, red_green, blue_yellow = fields
    rgb = torch.stack((luminance + 0.3 * red_green + 0.2 * blue_yellow,
                       luminance - 0.3 * red_green + 0.2 * blue_yellow,
                       luminance - 0.4 * blue_yellow), dim=-1)
    rgb = 0.5 + 0.2 * rgb
    return (rgb.clamp(0, 1) - 0.2).clamp(0, 1).float()
