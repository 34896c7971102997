"""Load a dataset: the train file's train/valid splits, the test file's long test split, metadata.

Metadata comes from the JSON sidecar pivf writes beside each file. Files without one (the
original PAIG downloads) get it from their name, whose tokens carry the parameters
(``color_spring_vx8_vy8_sl12_r2_k4_e6.npz``), or from the task's defaults when the caller names
the task. Every defect (a missing key, a truncated archive, a wrong dtype or shape, a checksum that
does not match) is a ``DataError`` of one line, which the CLI prints and exits 2 on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from torch import Tensor

from pivf.core.data.npz import beside_key, check_controls, read_beside, read_npz, sha256_file
from pivf.core.data.task import Task
from pivf.core.kernel.errors import DataError, PivfUserError
from pivf.core.kernel.plugin import format_validation_error
from pivf.core.kernel.registry import registry

__all__ = ["Dataset", "FORMAT_VERSION", "RecordingRecord", "SIDECAR_FORMAT", "Sidecar", "SourceRecord", "load_dataset",
           "read_sidecar", "recorded_sizes", "sidecar_path"]

SIDECAR_FORMAT = "pivf-dataset"
FORMAT_VERSION = 1


class TaskRecord(BaseModel):
    """What made a dataset: ``Task.describe()``."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # a newer pivf may record more

    task: str
    physics: str
    params: dict[str, Any]
    ground_truth: dict[str, float]
    dt: float
    image_size: int
    n_objects: int


class SourceRecord(BaseModel):
    """One recording a dataset was imported from, as it was read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str  # the file or folder name, without the folders above it
    sha256: str  # of the video file; of a folder, over its images' names and contents in frame order
    frames: int  # decoded frames, before the stride
    width: int
    height: int


class RecordingRecord(BaseModel):
    """How ``pivf data import`` made a dataset of recordings: enough to redo it from the same files."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sources: list[SourceRecord]
    fps: float  # the frames' rate before the stride
    fps_from: Literal["container", "--fps"]
    stride: int
    crop: tuple[int, int, int, int]  # x, y, width, height in source pixels
    overlap: int  # frames shared by consecutive sequences of a split
    fractions: dict[str, float]  # of each recording's frames, in time order: train, valid, test
    split_by: Literal["time", "recording"] = "time"  # "recording": the fractions deal whole recordings, in order


class ImportedRecord(BaseModel):
    """What a dataset of recordings carries beyond a task record: all optional, so every sidecar
    written before imports existed still loads."""

    recording: RecordingRecord | None = None
    scale_m_per_px: float | None = None  # metres per pixel of the dataset's frames (crop and resize applied)
    known: dict[str, float] = {}  # measured quantities in physical units, e.g. {"length": 0.9}


class Sidecar(TaskRecord, ImportedRecord):
    """The JSON written beside each .npz: the task record, the file's role and how to check it."""

    format: Literal["pivf-dataset"]
    format_version: int
    channels: int
    role: Literal["train", "test"]
    data_file: str
    companion: str
    lengths: dict[str, int]
    counts: dict[str, int]
    seed: int | None
    chunk_size: int
    device: str
    sha256: str

    @field_validator("data_file", "companion")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        """Files of a dataset lie side by side: a path elsewhere (``../../etc/passwd``) is refused unread."""
        if Path(name).name != name or "\\" in name or not name.endswith(".npz"):
            raise ValueError("must be a plain .npz file name in the sidecar's folder")
        return name


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


class DatasetInfo(TaskRecord, ImportedRecord):
    """What the trainer needs to know about the data, and where it came from."""

    channels: int
    train_length: int
    test_length: int
    seed: int | None
    source: Literal["sidecar", "file name", "task defaults"]
    files: tuple[Path, ...]
    sha256: tuple[str, ...]  # of each of ``files``, for a run to record what it trained on


@dataclass(frozen=True)
class Dataset:
    """uint8 video tensors (N, T, H, W, C), as stored; ``as_float`` makes model input of them. Video
    recorded under controls has its inputs beside each split, float32 (N, T, m), else None."""

    train: Tensor
    valid: Tensor
    test: Tensor
    info: DatasetInfo
    train_controls: Tensor | None = None
    valid_controls: Tensor | None = None
    test_controls: Tensor | None = None

    @property
    def n_controls(self) -> int:
        return 0 if self.train_controls is None else self.train_controls.shape[-1]

    def to(self, device: torch.device) -> Dataset:
        """The splits on ``device``, where training indexes its batches."""
        def move(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.to(device)

        return replace(self, train=self.train.to(device), valid=self.valid.to(device), test=self.test.to(device),
                       train_controls=move(self.train_controls), valid_controls=move(self.valid_controls),
                       test_controls=move(self.test_controls))


# --- finding the files and their metadata ------------------------------------------------------

def read_sidecar(path: Path) -> Sidecar | None:
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        return Sidecar.model_validate(json.loads(side.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{side}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise DataError(f"{side}: cannot read it ({exc.strerror})") from None
    except ValidationError as exc:
        raise DataError(format_validation_error(exc, str(side))) from None


def _task_from_name(file_name: str, task: str | None) -> tuple[Task, int] | None:
    """The task (with the name's params) and sequence length a file name encodes."""
    names = [task] if task else registry().names("task")
    for name in names:
        cls = registry().get("task", name)
        parsed = cls.params_from_file_name(file_name)
        if parsed is not None:
            params, length = parsed
            try:
                instance = registry().create("task", name, **params)
                instance.check_physics()
                return instance, length
            except PivfUserError as exc:
                raise DataError(f"{file_name}: its name gives parameters task '{name}' rejects ({exc})") from None
    return None


def _pair_without_sidecar(path: Path, task: str | None) -> tuple[Path, Path | None, Task, str]:
    """(train file, test file or None, task, source) for files named as the original ones.

    Of the files in the folder that the same task with the same parameters wrote, the one with the
    shortest sequences is the train file and the one with the longest the test file.
    """
    found = _task_from_name(path.name, task)
    if found is None:
        if task is None:
            raise DataError(f"{path}: no sidecar {sidecar_path(path).name} and the name matches no task's files; "
                            "name the task (--task) to load it with that task's defaults")
        return path, None, registry().create("task", task), "task defaults"
    instance = found[0]
    pair = []
    for sibling in sorted(path.parent.glob("*.npz")):
        other = _task_from_name(sibling.name, instance.name)
        if other is not None and other[0].describe() == instance.describe():
            pair.append((other[1], sibling))
    pair.sort()
    return pair[0][1], (pair[-1][1] if len(pair) > 1 else None), instance, "file name"


def _resolve(path: Path, task: str | None) -> tuple[Path, Path | None, Sidecar | None, dict[str, Any], str]:
    """(train file, test file or None, train file's sidecar, what the data is (a task record), source)."""
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise DataError(f"{path}: no .npz dataset in this folder")
        trains = [f for f in files if (meta := read_sidecar(f)) is not None and meta.role == "train"]
        if len(trains) > 1:
            raise DataError(f"{path}: several datasets here ({', '.join(f.name for f in trains)}); pass one file")
        path = trains[0] if trains else files[0]
    meta = read_sidecar(path)
    if meta is None:
        train, test, instance, source = _pair_without_sidecar(path, task)
        return train, test, None, instance.describe(), source
    companion = path.with_name(meta.companion)
    missing = [f for f in (companion, sidecar_path(companion)) if not f.is_file()]
    if missing:
        raise DataError(f"{path.parent}: incomplete dataset, {' and '.join(f.name for f in missing)} missing "
                        f"(was its generation interrupted?); generate it again")
    if meta.role == "test":  # its own train_x and valid_x are empty: take them from the train file
        path, companion = companion, path
        meta = read_sidecar(path)
        if meta is None:
            raise DataError(f"{path}: its sidecar went missing while the dataset was being opened")
    return path, companion, meta, meta.model_dump(), "sidecar"


def recorded_sizes(path: Path) -> dict[str, Any]:
    """``image_size``, ``channels``, ``n_objects`` and ``dt`` from the sidecar of the dataset at
    ``path`` (a file or a folder); empty when it has none or cannot be opened (``load_dataset`` then
    says why)."""
    try:
        meta = _resolve(Path(path).expanduser(), None)[2] if Path(path).expanduser().exists() else None
    except (DataError, OSError):
        return {}
    if meta is None:
        return {}
    return {"image_size": meta.image_size, "channels": meta.channels, "n_objects": meta.n_objects, "dt": meta.dt}


# --- checks ------------------------------------------------------------------------------------

def _read_checked(path: Path, meta: Sidecar | None) -> tuple[dict[str, np.ndarray], str]:
    """The file's splits and its sha256."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if meta is not None and digest != meta.sha256:
        raise DataError(f"{path}: sha256 differs from its sidecar's; the file changed or is damaged")
    arrays = read_npz(path)
    if meta is None:
        return arrays, digest
    for key, array in arrays.items():
        expected = (meta.counts[key], meta.lengths[key], meta.image_size, meta.image_size, meta.channels)
        if array.shape != expected:
            raise DataError(f"{path}: '{key}' has shape {array.shape}, its sidecar says {expected}")
    return arrays, digest


def _check_frames(path: Path, arrays: dict[str, np.ndarray], image_size: int) -> None:
    for key, array in arrays.items():
        height, width = array.shape[2:4]
        if (height, width) != (image_size, image_size):
            raise DataError(f"{path}: '{key}' frames are {height}×{width}, the task's are {image_size}×{image_size}")
        if array.size and not array.any():
            raise DataError(f"{path}: '{key}' holds only black frames")


def load_dataset(path: Path | str, task: str | None = None) -> Dataset:
    """A dataset from a train file, a test file or a folder holding one pair.

    ``test`` is the test file's long ``test_x`` when the pair is complete, else the file's own.
    ``task`` names the task for files that have no sidecar and whose names do not encode one.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    train_path, test_path, meta, description, source = _resolve(path, task)
    train_arrays, train_digest = _read_checked(train_path, meta)
    test_arrays, test_digest = ((train_arrays, None) if test_path is None
                                else _read_checked(test_path, read_sidecar(test_path)))
    record = TaskRecord.model_validate(description)
    for file, arrays in ((train_path, train_arrays), (test_path, test_arrays)):
        if file is not None:
            _check_frames(file, arrays, record.image_size)
    train, valid, test = (torch.from_numpy(a)
                          for a in (train_arrays["train_x"], train_arrays["valid_x"], test_arrays["test_x"]))
    imported = ImportedRecord.model_validate(meta.model_dump() if meta is not None else {})
    info = DatasetInfo(**record.model_dump(), **imported.model_dump(), channels=train.shape[-1],
                       train_length=train.shape[1], test_length=test.shape[1],
                       seed=meta.seed if meta is not None else None, source=source,
                       files=tuple(p for p in (train_path, test_path) if p is not None),
                       sha256=tuple(d for d in (train_digest, test_digest) if d is not None))
    controls = _read_controls(((train_path, "train_x", train_arrays), (train_path, "valid_x", train_arrays),
                               (test_path or train_path, "test_x", test_arrays)))
    return Dataset(train=train, valid=valid, test=test, info=info, train_controls=controls[0],
                   valid_controls=controls[1], test_controls=controls[2])


def _read_controls(splits: tuple[tuple[Path, str, dict[str, np.ndarray]], ...]) -> list[Tensor | None]:
    """Each split's recorded inputs (N, T, m), checked; all splits have them or none has."""
    found = []
    for path, key, arrays in splits:
        controls = read_beside(path, key, "controls")
        if controls is not None:
            check_controls(path, beside_key(key, "controls"), controls, arrays[key])
        found.append(None if controls is None else torch.from_numpy(controls))
    present = [key for (_, key, _), controls in zip(splits, found, strict=True) if controls is not None]
    missing = [key for (_, key, arrays), controls in zip(splits, found, strict=True)
               if controls is None and len(arrays[key])]
    if present and missing:
        raise DataError(f"{splits[0][0]}: '{present[0]}' was recorded under controls but '{missing[0]}' has none")
    if len({controls.shape[-1] for controls in found if controls is not None}) > 1:
        raise DataError(f"{splits[0][0]}: its splits record different numbers of control inputs")
    return found
