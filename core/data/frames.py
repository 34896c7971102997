"""Video as files hold it, uint8 (..., T, H, W, C), made into what networks read, float (..., T, C, H, W)
in [0, 1]. Its own module, below the dataset loader, so the objective base class can use it without
importing the loader (which needs the plugin registry)."""
from __future__ import annotations

from torch import Tensor

__all__ = ["as_float"]


def as_float(frames: Tensor) -> Tensor:
    """uint8 (..., T, H, W, C) → float (..., T, C, H, W) in [0, 1]: a permute, never a reshape."""
    return frames.movedim(-1, -3).float().div_(255)
