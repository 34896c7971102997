"""Where a trained model sees the objects: the encoder's position in every frame (a ring) and the
physics' prediction from the input frames onwards (a cross), drawn over the test video. On a user's
own recording this is the first picture to look at: a ring off the object means the encoder tracks
something else (a shadow, the clutter), a cross drifting from the ring means the physics is wrong."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from pivf.core.data.frames import as_float
from pivf.core.data.provenance import check_dataset
from pivf.core.kernel.atomic import atomic_write_bytes
from pivf.core.kernel.build import build_objective
from pivf.core.kernel.errors import PivfUserError
from pivf.core.kernel.inference import inference
from pivf.core.kernel.objective import Objective
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.training.evaluate import restore
from pivf.core.training.train import Log

__all__ = ["draw_tracks", "render_tracks", "track"]

#: pixels each frame pixel becomes in the picture
ZOOM = 8
RING, CROSS = (255, 255, 255), (255, 220, 0)


def track(pipeline: Pipeline, objective: Objective, frames: Tensor) -> tuple[Tensor, Tensor]:
    """Encoded positions (B, T, K, 2) in every frame of ``frames`` (B, T, C, H, W) and predicted ones
    (B, T, K, 2) from the state at the last input frame, NaN before it."""
    if pipeline.physics.state != "objects":
        raise PivfUserError(f"physics '{pipeline.physics.name}' has no object positions to draw; tracks need an "
                            "object-state physics (spring, pivot_pendulum, gravity, ...)")
    seen = objective.input_steps
    with inference(pipeline):
        encoded = pipeline.encode(frames, refine=False).positions
        if encoded is None:
            raise PivfUserError(f"encoder '{pipeline.encoder.name}' gives no per-frame positions to draw")
        start = pipeline.encode(frames[:, :seen])
        q, _ = pipeline.rollout(start.q0, start.p0, frames.shape[1] - seen)
    predicted = torch.full_like(encoded, float("nan"))
    predicted[:, seen - 1:] = q.transpose(0, 1).reshape(predicted[:, seen - 1:].shape)
    return encoded, predicted


def draw_tracks(frames: Tensor, encoded: Tensor, predicted: Tensor) -> Image.Image:
    """One row per sequence, one column per frame, each frame enlarged ``ZOOM`` times with the
    encoder's ring and the physics' cross over it (positions in pixels from the top-left corner,
    x = column, y = row)."""
    n, length, _, height, width = frames.shape
    tile_h, tile_w = height * ZOOM, width * ZOOM
    canvas = Image.new("RGB", (length * (tile_w + 2), n * (tile_h + 2)), "white")
    pictures = (frames.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, -1, 3, -1, -1)
    for i in range(n):
        for t in range(length):
            tile = Image.fromarray(np.ascontiguousarray(pictures[i, t].permute(1, 2, 0).cpu().numpy()))
            tile = tile.resize((tile_w, tile_h), Image.Resampling.NEAREST)
            pen = ImageDraw.Draw(tile)
            for x, y in (encoded[i, t] * ZOOM).tolist():
                pen.ellipse((x - 6, y - 6, x + 6, y + 6), outline=RING, width=2)
            for x, y in (predicted[i, t] * ZOOM).tolist():
                if np.isfinite(x) and np.isfinite(y):
                    pen.line((x - 5, y - 5, x + 5, y + 5), fill=CROSS, width=2)
                    pen.line((x - 5, y + 5, x + 5, y - 5), fill=CROSS, width=2)
            canvas.paste(tile, (t * (tile_w + 2) + 1, i * (tile_h + 2) + 1))
    return canvas


def render_tracks(run_dir: Path, out: Path, n: int = 4, checkpoint: str = "best", device: str = "auto",
                  log: Log = print, accept_changed_data: bool = False) -> Path:
    """The tracks PNG of a run's first ``n`` test sequences (see the module's docs)."""
    config, _, pipeline, dataset = restore(run_dir, checkpoint, device, log)
    check_dataset(run_dir, dataset, accept_changed_data, log)
    frames = as_float(dataset.test[:n].to(next(pipeline.parameters()).device))
    encoded, predicted = track(pipeline, build_objective(config), frames)
    buffer = io.BytesIO()
    draw_tracks(frames, encoded, predicted).save(buffer, format="PNG")
    atomic_write_bytes(Path(out), buffer.getvalue())
    return Path(out)
