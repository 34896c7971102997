"""Video files through a real codec: FFmpeg, as PyAV ships it (H.264 by libx264 among others).

Recordings come in as containers (mp4, mov, avi, mkv, webm, gif) and are decoded to RGB frames with
their timestamps, so the importer can take the frame interval from the stream and refuse a variable
frame rate. Encoding is here for what must pass through a lossy codec exactly as a user's footage
does: the compression nuisance of the camera layer and the recordings the video proof writes.
Every failure to read a file is a ``DataError`` of one line naming it.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pivf.core.kernel.atomic import temporary_beside
from pivf.core.kernel.errors import DataError

__all__ = ["H264_CONTAINERS", "VIDEO_SUFFIXES", "VideoMeta", "codec_round_trip", "decode_video", "encode_video",
           "probe_video"]

#: containers the importer reads as video (anything else in a source list must be an image folder)
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".m4v")
#: containers H.264 is written into, by file suffix, as FFmpeg names their muxers
H264_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


@dataclass(frozen=True)
class VideoMeta:
    """What a container says about its first video stream, before any frame is decoded."""

    width: int
    height: int
    fps: float | None  # the container's average frame rate; None when it gives none
    frames: int  # the container's frame count; 0 when it does not record one
    codec: str


def _av() -> Any:
    import av  # imported on use: the CLI starts without FFmpeg's libraries loaded

    return av


def _open(path: Path) -> Any:
    av = _av()
    if not path.is_file():
        raise DataError(f"{path}: no such video file")
    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: holds no video stream")
    return container


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def probe_video(path: Path) -> VideoMeta:
    """The first video stream's size, frame rate, frame count and codec."""
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return VideoMeta(width=stream.codec_context.width, height=stream.codec_context.height,
                         fps=float(rate) if rate else None, frames=int(stream.frames or 0),
                         codec=stream.codec_context.name)


def decode_video(path: Path) -> Iterator[tuple[float | None, np.ndarray]]:
    """(time in seconds or None, RGB uint8 (H, W, 3)) for each frame of the first video stream, in
    presentation order. A stream that breaks off mid-way is a ``DataError`` naming the file."""
    path = Path(path)
    av = _av()
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.time, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: its video breaks off ({_reason(exc)})") from None


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in 4:2:0 needs an even width and height: an odd last row or column is repeated."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _encode(target: str | BinaryIO, frames: Iterable[np.ndarray], fps: float, crf: int, container_format: str | None,
            ) -> tuple[int, int]:
    """Encode RGB uint8 frames as H.264 (yuv420p, constant rate factor ``crf``); the padded (H, W)."""
    av = _av()
    size = (0, 0)
    with av.open(target, "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            padded = _even(np.ascontiguousarray(frame, dtype=np.uint8))
            if size == (0, 0):
                size = padded.shape[:2]
                stream.height, stream.width = size
            container.mux(stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
        container.mux(stream.encode(None))
    return size


def encode_video(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int = 23) -> Path:
    """Write RGB uint8 frames (H, W, 3) to an H.264 file (its suffix picks the container: one of
    ``H264_CONTAINERS``), written beside and renamed into place, so a killed write leaves no file
    under the name."""
    path = Path(path)
    container_format = H264_CONTAINERS.get(path.suffix.lower())
    if container_format is None:
        raise DataError(f"{path}: H.264 is written as {', '.join(H264_CONTAINERS)}, not '{path.suffix}'")
    tmp = temporary_beside(path)
    try:
        _encode(str(tmp), frames, fps, crf, container_format)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def codec_round_trip(video: np.ndarray, fps: float, crf: int) -> np.ndarray:
    """One clip, uint8 (T, H, W, 3), encoded to H.264 in memory and decoded again: the artefacts a
    recording's compression leaves (blocks, smeared colour, a keyframe's quality jump)."""
    buffer = io.BytesIO()
    height, width = video.shape[1:3]
    _encode(buffer, iter(video), fps, crf, container_format="mp4")
    buffer.seek(0)
    av = _av()
    with av.open(buffer, "r") as container:
        decoded = [frame.to_ndarray(format="rgb24")[:height, :width] for frame in container.decode(video=0)]
    return np.stack(decoded)
