"""A picture of a dataset: a few sequences, one row each, frames left to right; and of an import:
the recording's first frame with the crop drawn on it beside what the crop became."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.kernel.atomic import atomic_write_bytes
from pivf.core.kernel.images import frame_grid, save_png

__all__ = ["write_import_preview", "write_preview"]

#: the height the source frame is shown at in an import's preview
SOURCE_HEIGHT = 360


def write_preview(frames: Tensor, path: Path, sequences: int = 4, max_frames: int = 20) -> Path:
    """PNG of the first ``sequences`` of uint8 video (N, T, H, W, C), at most ``max_frames`` each,
    enlarged to about 96 px per frame."""
    rows = [as_float(sequence[:max_frames]) for sequence in frames[:sequences]]
    save_png(frame_grid(rows), Path(path), scale=max(1, 96 // frames.shape[2]))
    return Path(path)


def write_import_preview(source_frame: np.ndarray, crop: tuple[int, int, int, int], sequence: Tensor,
                         path: Path, max_frames: int = 8) -> Path:
    """PNG of an import: the recording's first frame (RGB uint8 (H, W, 3)) with the crop box drawn
    in yellow, then the first ``max_frames`` frames of a sequence (uint8 (T, h, w, C)) as imported,
    in two rows of half the source's height: is the object inside the crop, and still visible at the
    dataset's size?"""
    scale = SOURCE_HEIGHT / source_frame.shape[0]
    shown = Image.fromarray(source_frame).resize((round(source_frame.shape[1] * scale), SOURCE_HEIGHT),
                                                 Image.Resampling.BILINEAR)
    x, y, width, height = (round(v * scale) for v in crop)
    ImageDraw.Draw(shown).rectangle((x, y, x + width - 1, y + height - 1), outline=(255, 220, 0), width=3)
    frames = sequence[:max_frames].expand(-1, -1, -1, 3).numpy()
    tiles = [Image.fromarray(frame).resize((SOURCE_HEIGHT // 2, SOURCE_HEIGHT // 2), Image.Resampling.NEAREST)
             for frame in frames]
    columns, side = (len(tiles) + 1) // 2, SOURCE_HEIGHT // 2
    canvas = Image.new("RGB", (shown.width + 8 + columns * (side + 4), SOURCE_HEIGHT + 4), "white")
    canvas.paste(shown, (0, 0))
    for index, tile in enumerate(tiles):  # in reading order: the first half above, the rest below
        canvas.paste(tile, (shown.width + 8 + (index % columns) * (side + 4), (index // columns) * (side + 4)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
