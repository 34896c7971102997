"""PNG figures that runs and dataset previews write: frame grids (rollouts, decoder templates, a
dataset's sequences) and matplotlib figures, written atomically."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pivf.core.kernel.atomic import atomic_write_bytes

__all__ = ["energy_figure", "frame_grid", "pyplot", "save_figure", "save_png"]


def to_uint8_image(grid: Tensor) -> np.ndarray:
    """(C, H, W) floats in [0, 1] → (H, W, 3) uint8."""
    grid = grid.detach().float().clamp(0, 1).cpu()
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def frame_grid(rows: list[Tensor], pad: int = 1) -> Tensor:
    """Rows of frames (T, C, H, W) (equal C, H, W; rows may differ in T) → one (C, H', W') image."""
    c, h, w = rows[0].shape[1:]
    cols = max(r.shape[0] for r in rows)
    canvas = torch.ones(c, len(rows) * (h + pad) + pad, cols * (w + pad) + pad)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[:, y:y + h, x:x + w] = frame.detach().float().cpu()
    return canvas


def save_png(image: Tensor, path: Path, scale: int = 3) -> None:
    pil = Image.fromarray(to_uint8_image(image))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def pyplot():  # noqa: ANN201 - matplotlib.pyplot, imported lazily (slow) on the file-only backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def energy_figure(energy: Tensor, dt: float):  # noqa: ANN201 - a matplotlib Figure
    """Energy along rollouts (T, B): one thin line per sequence, relative to its start."""
    plt = pyplot()
    values = energy.detach().double().cpu()
    scale = values[0].abs().clamp_min(1e-12)
    times = torch.arange(values.shape[0], dtype=torch.float64) * dt
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(times.numpy(), ((values - values[0]) / scale).numpy(), linewidth=0.8)
    ax.set_xlabel("time")
    ax.set_ylabel("(E − E₀) / |E₀|")
    ax.set_title("energy along predicted rollouts")
    fig.tight_layout()
    return fig


def save_figure(fig, path: Path) -> None:  # noqa: ANN001 - a matplotlib Figure
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
