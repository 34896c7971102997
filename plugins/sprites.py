"""Digit sprites and a natural-image background for the two-digit task, from files that ship inside
packages on PyPI (nothing is downloaded at run time).

The original task used MNIST digits over a CIFAR-10 photo, both downloaded. Here the digits are
scikit-learn's handwritten digits (8×8, from the UCI optical-digits set) and the background is
scikit-image's ``coffee`` photograph. Both files are fixed, so datasets stay reproducible byte for
byte for given package versions.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DIGIT_BOX", "SPRITE_SCALE", "digit_sprite", "natural_background"]

#: size of a digit's box in image pixels (MNIST's 28-px box cropped by 3 px on each side)
DIGIT_BOX = 22
#: sprite pixels per image pixel (odd, see ``render.sprite_patches``)
SPRITE_SCALE = 7
#: the 8×8 glyph is drawn this many image pixels wide, centred in the box (MNIST digits fit in 20×20)
_GLYPH = 16


@lru_cache(maxsize=10)
def digit_sprite(digit: int) -> tuple[Tensor, tuple[float, float]]:
    """The digit's ink (S, S) in [0, 1], S = DIGIT_BOX·SPRITE_SCALE, and its centre of mass (x, y).

    The first example of ``digit`` in scikit-learn's digits, upsampled smoothly. Sprites are placed
    by centre of mass, the way MNIST centres its digits.
    """
    from sklearn.datasets import load_digits  # heavy import, needed only for this task

    digits = load_digits()
    index = int((digits.target == digit).nonzero()[0][0])
    glyph = torch.tensor(digits.images[index], dtype=torch.float64) / 16.0
    side, inner = DIGIT_BOX * SPRITE_SCALE, _GLYPH * SPRITE_SCALE
    upsampled = F.interpolate(glyph[None, None], size=(inner, inner), mode="bicubic", align_corners=False)[0, 0]
    ink = torch.zeros(side, side, dtype=torch.float64)
    start = (side - inner) // 2
    ink[start:start + inner, start:start + inner] = upsampled.clamp(0, 1)
    mass = ink.sum()
    pixel = torch.arange(side, dtype=torch.float64) + 0.5
    anchor = (float((ink.sum(0) * pixel).sum() / mass), float((ink.sum(1) * pixel).sum() / mass))
    return ink.float(), anchor


@lru_cache(maxsize=4)
def natural_background(size: int) -> Tensor:
    """(size, size, 3) in [0, 1]: scikit-image's ``coffee`` photo, centre-cropped, resized with
    anti-aliasing, then darkened by 0.2 and clipped, as the original did to its CIFAR background."""
    from skimage import data  # heavy import, needed only for this task

    photo = torch.from_numpy(data.coffee()).double().div(255)  # (400, 600, 3)
    height, width = photo.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = photo[top:top + side, left:left + side].permute(2, 0, 1)[None]
    small = F.interpolate(square, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return (small.permute(1, 2, 0).clamp(0, 1) - 0.2).clamp(0, 1).float()
