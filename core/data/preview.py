"""A picture of a dataset: a few sequences, one row each, frames left to right."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.kernel.images import frame_grid, save_png

__all__ = ["write_preview"]


def write_preview(frames: Tensor, path: Path, sequences: int = 4, max_frames: int = 20) -> Path:
    """PNG of the first ``sequences`` of uint8 video (N, T, H, W, C), at most ``max_frames`` each,
    enlarged to about 96 px per frame."""
    rows = [as_float(sequence[:max_frames]) for sequence in frames[:sequences]]
    save_png(frame_grid(rows), Path(path), scale=max(1, 96 // frames.shape[2]))
    return Path(path)
