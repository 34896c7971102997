"""The original PAIG file layout: a .npz holding ``train_x``, ``valid_x`` and ``test_x``, each uint8
(N, T, H, W, C). Written as a stream and atomically, read with one-line errors.

Files pivf generates also hold, for each split, ``<split>_positions``: float32 (N, T, K, 2), where
each object appears in each frame, in pixels (x = column, y = row). They are for tests and
diagnostics (is an object where the encoder says?); training never reads them, and files without
them (the original ones) load the same. Video recorded under controls holds ``<split>_controls``:
float32 (N, T, m), the input applied from each frame to the next (the last one is recorded too and
drives nothing); training reads them. A task whose states come from another engine (dm_control)
also stores its true states, ``<split>_q`` and ``<split>_p``: float64 (N, T, *state), for
comparing a model's states with them.

``np.savez_compressed`` needs every array in memory at once. The writer here emits each array's
.npy header and then its bytes chunk by chunk into the zip member, so generating a dataset holds
one chunk of sequences, never the dataset. It writes to a temporary file in the same folder and
renames it into place only once complete, so a crash never leaves a half-written file under the
real name.
"""
from __future__ import annotations

import hashlib
import math
import os
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import numpy as np

from pivf.core.data.limits import check_dataset_bytes, format_bytes
from pivf.core.kernel.atomic import temporary_beside
from pivf.core.kernel.errors import DataError

__all__ = ["NpzWriter", "SPLITS", "beside_key", "check_controls", "read_beside", "read_npz", "sha256_file"]

SPLITS = ("train_x", "valid_x", "test_x")
#: what reading a damaged archive raises
UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class NpzWriter:
    """``with NpzWriter(path) as w: w.write("train_x", shape, chunks)``; renamed into place on success.

    ``compresslevel`` 1 is zlib's fastest: on these mostly-black frames it compresses within a few
    percent of the default level at several times the speed.
    """

    def __init__(self, path: Path, compresslevel: int = 1) -> None:
        self.path = Path(path)
        self.compresslevel = compresslevel
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> NpzWriter:
        self.tmp = temporary_beside(self.path)
        self._zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=self.compresslevel)
        return self

    def write(self, key: str, shape: tuple[int, ...], chunks: Iterable[np.ndarray],
              dtype: type[np.generic] = np.uint8) -> None:
        """Member ``key`` of ``dtype`` and ``shape``, from C-ordered chunks that concatenate along axis 0."""
        assert self._zip is not None, "use NpzWriter as a context manager"
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        written = 0
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            for chunk in chunks:
                if chunk.dtype != dtype or chunk.shape[1:] != shape[1:]:
                    raise ValueError(f"{key}: chunk {chunk.dtype} {chunk.shape} does not fit {np.dtype(dtype)} {shape}")
                member.write(np.ascontiguousarray(chunk).data)
                written += chunk.shape[0]
        if written != shape[0]:
            raise ValueError(f"{key}: wrote {written} rows, header says {shape[0]}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._zip is not None
        self._zip.close()
        try:
            if exc_type is None:
                with open(self.tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                self.tmp.chmod(0o644)  # mkstemp makes it private; a dataset is for sharing
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All three splits of a PAIG-layout file; any defect is a ``DataError`` of one line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    if not zipfile.is_zipfile(path):  # otherwise numpy tries it as a pickle and gives pickle advice
        raise DataError(f"{path}: truncated or corrupt .npz (not a zip archive)")
    check_claimed_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in SPLITS if key not in archive.files]
            if missing:
                found = ", ".join(archive.files) or "nothing"
                raise DataError(f"{path}: missing key '{missing[0]}' (found: {found}); a dataset needs "
                                f"{', '.join(SPLITS)}")
            arrays = {key: archive[key] for key in SPLITS}
    except DataError:
        raise
    except UNREADABLE as exc:
        raise corrupt(path, exc) from None
    for key, array in arrays.items():
        check_split(path, key, array)
    return arrays


def check_claimed_sizes(path: Path) -> None:
    """Each member's .npy header against the bytes the member holds, and their sum against the
    dataset limit, before numpy allocates what a (damaged or forged) header claims."""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                    claimed = math.prod(shape) * dtype.itemsize
                    held = info.file_size - member.tell()
                if claimed > held:
                    raise DataError(f"{path}: '{info.filename.removesuffix('.npy')}' claims shape {shape} "
                                    f"({format_bytes(claimed)}) but holds {format_bytes(held)}; the file is damaged")
                total += claimed
    except DataError:
        raise
    except UNREADABLE as exc:
        raise corrupt(path, exc) from None
    check_dataset_bytes(total, f"{path}: its arrays")


def beside_key(split: str, what: str) -> str:
    """The member holding ``what`` ("positions", "controls", "q", "p") beside a split's frames:
    (``train_x``, "positions") → ``train_positions``."""
    return f"{split.removesuffix('_x')}_{what}"


def read_beside(path: Path, split: str, what: str) -> np.ndarray | None:
    """``what`` is stored beside ``split``'s frames (see ``beside_key``), or None for a file without it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            key = beside_key(split, what)
            return archive[key] if key in archive.files else None
    except UNREADABLE as exc:
        raise corrupt(path, exc) from None


def corrupt(path: Path, exc: Exception) -> DataError:
    """The one-line error for an archive that fails to read."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(f"{path}: truncated or corrupt .npz ({reason})")


def check_split(path: Path, key: str, array: np.ndarray) -> None:
    """uint8 video of shape (N, T, H, W, C) with C = 1 or 3."""
    if array.dtype != np.uint8:
        raise DataError(f"{path}: '{key}' has dtype {array.dtype}, expected uint8 (frames 0-255)")
    if array.ndim != 5 or array.shape[-1] not in (1, 3):
        raise DataError(f"{path}: '{key}' has shape {array.shape}, expected (N, T, H, W, C) with C = 1 or 3")


def check_controls(path: Path, key: str, controls: np.ndarray, frames: np.ndarray) -> None:
    """Finite float32 inputs (N, T, m), one per frame of the split's frames (N, T, ...)."""
    if controls.dtype != np.float32 or controls.ndim != 3 or controls.shape[:2] != frames.shape[:2]:
        raise DataError(f"{path}: '{key}' is {controls.dtype} {controls.shape}, expected float32 "
                        f"{frames.shape[:2] + ('m',)} (one input vector per frame)")
    if not np.isfinite(controls).all():
        raise DataError(f"{path}: '{key}' holds non-finite inputs")
