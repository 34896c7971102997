"""Recordings as streams of frames with their times: a video file, or a folder of numbered images.

A video is read through the codec (``codec.decode_video``), its frame rate taken from the container.
A folder holds one image per frame, in the order of the numbers in their names, read naturally
(``2.png`` before ``10.png``); images carry no time, so a folder has no rate of its own. All frames of
a recording have one size: a folder's image headers are checked before any frame is decoded, a
video's frames as they come. Every failure to read is a ``DataError`` of one line naming the file.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pivf.core.data.codec import VIDEO_SUFFIXES, decode_video, probe_video
from pivf.core.data.npz import sha256_file
from pivf.core.kernel.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "Recording", "natural_key", "open_recording"]

#: the images a folder of frames may hold (other files in it are ignored)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: what reading an image can raise (a truncated file, an unknown format, a decompression bomb)
_UNREADABLE_IMAGE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """``frame10.png`` after ``frame9.png``: the name's digit runs compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


@dataclass(frozen=True)
class Recording:
    """A source of frames: its path, frame size, the container's rate (None for a folder or a
    container that gives none) and, for a folder, its images in frame order."""

    path: Path
    width: int
    height: int
    fps: float | None
    images: tuple[Path, ...] = ()

    def frames(self) -> Iterator[tuple[float | None, np.ndarray]]:
        """(time in seconds or None, RGB uint8 (H, W, 3)) for each frame, in order; a frame of
        another size than the first is a ``DataError``."""
        stream = decode_video(self.path) if not self.images else ((None, _read_image(p)) for p in self.images)
        for index, (time, frame) in enumerate(stream):
            if frame.shape[:2] != (self.height, self.width):
                raise DataError(f"{self.path}: frame {index} is {frame.shape[1]}×{frame.shape[0]}, the recording's "
                                f"first is {self.width}×{self.height}")
            yield time, frame

    def sha256(self) -> str:
        """Of a video, its file; of a folder, its images' names and contents in frame order."""
        if not self.images:
            return sha256_file(self.path)
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(f"{image.name}\0{sha256_file(image)}\n".encode())
        return digest.hexdigest()


@contextmanager
def _image(path: Path) -> Iterator[Image.Image]:
    """The opened image; reading it (its header here, its pixels in the block) fails as one line."""
    try:
        with Image.open(path) as image:
            yield image
    except _UNREADABLE_IMAGE as exc:
        raise DataError(f"{path}: not a readable image ({' '.join(str(exc).split()) or type(exc).__name__})") from None


def _read_image(path: Path) -> np.ndarray:
    with _image(path) as image:
        return np.asarray(image.convert("RGB"))


def _open_folder(folder: Path) -> Recording:
    images = tuple(sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                          key=lambda p: natural_key(p.name)))
    if not images:
        raise DataError(f"{folder}: a folder of frames must hold numbered images ({', '.join(IMAGE_SUFFIXES)}); "
                        "it holds none")
    sizes = []
    for image in images:  # headers only: nothing is decoded yet
        with _image(image) as opened:
            sizes.append(opened.size)
    width, height = sizes[0]
    for image, size in zip(images, sizes, strict=True):
        if size != (width, height):
            raise DataError(f"{image}: {size[0]}×{size[1]}, but {images[0].name} is {width}×{height}; the images of "
                            "a recording must share one size")
    return Recording(path=folder, width=width, height=height, fps=None, images=images)


def open_recording(path: Path) -> Recording:
    """A video file (its suffix one of ``VIDEO_SUFFIXES``) or a folder of numbered images."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _open_folder(path)
    if not path.exists():
        raise DataError(f"{path}: no such video file or folder of images")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise DataError(f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) nor a folder of numbered images")
    meta = probe_video(path)
    return Recording(path=path, width=meta.width, height=meta.height, fps=meta.fps)
