"""Turn recordings (videos, folders of numbered images) into a dataset pivf trains on.

Each recording is read as a stream: every ``stride``-th frame is cropped to a square of source
pixels and averaged down to ``size``×``size`` pixels (PIL's BOX filter: each output pixel is the
mean of the source area it covers), so only the small frames are held. The frame interval is
``stride / fps``, with the rate from the container, which must then be constant: a frame whose
interval departs from 1/fps by more than ``VFR_TOLERANCE`` of it (plus ``TIME_BASE_SLACK``, the
rounding of a millisecond time base) is refused, unless ``fps`` is given and the timestamps are
ignored. Each recording is split by time, its first frames for training, the next for validation,
the last for testing, and cut into sequences within each part, so no frame appears in two splits;
the recordings' sequences are pooled.

The dataset is the generated kind (``generate``): a train file (train_x, valid_x, short test_x)
and a test file (long test_x), each with a sidecar whose ``task`` is "imported" and which records
the recording (``RecordingRecord``), the scale of the dataset's pixels and the known quantities.
Beside each split lies ``<split>_origin``, int64 (N, 2): the recording's number in the sidecar's
``recording.sources`` and the decoded frame each sequence starts at (its frame j is decoded frame
origin + j·stride). Files are written in a staging folder and moved into place sidecars last.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from pivf.core.data.dataset import FORMAT_VERSION, SIDECAR_FORMAT, RecordingRecord, Sidecar, SourceRecord, sidecar_path
from pivf.core.data.limits import check_dataset_bytes
from pivf.core.data.npz import SPLITS, NpzWriter, beside_key, sha256_file
from pivf.core.data.recording import Recording, open_recording
from pivf.core.data.staging import publish, staged
from pivf.core.kernel.atomic import atomic_write_text
from pivf.core.kernel.errors import DataError, PivfUserError
from pivf.core.kernel.paths import make_dir
from pivf.core.kernel.registry import registry

__all__ = ["ImportOptions", "SCALE_KEY", "TASK", "TEST_FILE", "TRAIN_FILE", "import_recordings", "known_and_scale",
           "parse_crop"]

#: the sidecar's task name of an imported dataset
TASK = "imported"
TRAIN_FILE, TEST_FILE = f"{TASK}_train.npz", f"{TASK}_test.npz"
#: the prefix of the hidden folder an import is written in
STAGING = ".importing-"
#: how far a frame interval may depart from 1/fps, as a fraction of it, before the rate counts as variable
VFR_TOLERANCE = 0.02
#: seconds a timestamp may be off by rounding to its time base (a millisecond in Matroska)
TIME_BASE_SLACK = 1e-3
#: the key of a known-quantities file that gives the scale, in metres per source pixel
SCALE_KEY = "metres_per_pixel"
CHANNELS = 3


@dataclass(frozen=True)
class ImportOptions:
    """How recordings become sequences; ``check`` refuses values no import can use, naming the option."""

    size: int = 32  # the dataset's square frame side, in pixels
    crop: tuple[int, int, int, int] | None = None  # x, y, w = h in source pixels; None: the centred largest square
    stride: int = 1  # keep every stride-th frame
    fps: float | None = None  # the rate to assume, timestamps ignored; None: the container's, checked constant
    clip_length: int = 12  # frames per train, valid and short test sequence
    overlap: int | None = None  # frames consecutive sequences of a split share; None: clip_length // 2
    test_length: int = 30  # frames per long test sequence (extrapolation)
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    #: "time": each recording split in time order; "recording": whole recordings dealt to the splits
    #: in the order given (many short clips, each too short to split)
    split_by: Literal["time", "recording"] = "time"
    n_objects: int = 1
    physics: str | None = None  # the physics plugin the scene follows, recorded when known
    metres_per_pixel: float | None = None  # of the source's pixels
    known: dict[str, float] = field(default_factory=dict)  # known quantities in physical units

    @property
    def shared(self) -> int:
        return self.clip_length // 2 if self.overlap is None else self.overlap

    @property
    def frame_bytes(self) -> int:
        return self.size ** 2 * CHANNELS

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": 1 - self.valid_fraction - self.test_fraction, "valid": self.valid_fraction,
                "test": self.test_fraction}

    def check(self) -> None:
        counts = {"--size": self.size, "--stride": self.stride, "--clip-length": self.clip_length,
                  "--test-length": self.test_length, "--objects": self.n_objects}
        for option, count in counts.items():
            if count < 1:
                raise PivfUserError(f"{option}: must be at least 1, got {count}")
        if not 0 <= self.shared < min(self.clip_length, self.test_length):
            raise PivfUserError(f"--overlap: must be at least 0 and below --clip-length {self.clip_length} and "
                                f"--test-length {self.test_length}, got {self.shared}")
        for option, fraction in (("--valid-fraction", self.valid_fraction), ("--test-fraction", self.test_fraction)):
            if not 0 < fraction < 1:
                raise PivfUserError(f"{option}: must lie between 0 and 1, got {fraction}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise PivfUserError(f"--valid-fraction {self.valid_fraction} + --test-fraction {self.test_fraction} "
                                "leave no frames for training; their sum must be below 1")
        for option, value in (("--fps", self.fps), ("--metres-per-pixel", self.metres_per_pixel)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise PivfUserError(f"{option}: must be a positive number, got {value}")
        if self.crop is not None:
            x, y, width, height = self.crop
            if width != height or width < 1 or x < 0 or y < 0:
                raise PivfUserError(f"--crop: {x},{y},{width},{height} must be a square (W = H ≥ 1) at x, y ≥ 0; "
                                    "the dataset's frames are square")
        if self.split_by not in ("time", "recording"):
            raise PivfUserError(f"--split-by: unknown '{self.split_by}'; allowed: time, recording")
        if self.physics is not None:
            registry().get("physics", self.physics)


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"X,Y,W,H"`` (source pixels) as four integers."""
    try:
        x, y, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise PivfUserError(f"--crop: expected X,Y,W,H in source pixels (four integers), got '{text}'") from None
    return x, y, width, height


def known_and_scale(path: Path | None, metres_per_pixel: float | None) -> tuple[dict[str, float], float | None]:
    """The known quantities of a JSON file of numbers (``{"length": 0.9, "gravity": 9.81}``) and the
    scale in metres per source pixel, from its ``SCALE_KEY`` or the flag; the two must agree."""
    if path is None:
        return {}, metres_per_pixel
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise DataError(f'{path}: expected a JSON object of numbers, e.g. {{"length": 0.9, "gravity": 9.81}}')
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{path}: '{key}' is {json.dumps(value)}, expected a finite number")
    known = {key: float(value) for key, value in values.items()}
    scale = known.pop(SCALE_KEY, None)
    if scale is not None and metres_per_pixel is not None and scale != metres_per_pixel:
        raise DataError(f"{path}: {SCALE_KEY} {scale:g} differs from --metres-per-pixel {metres_per_pixel:g}; "
                        "give one of them")
    return known, metres_per_pixel if metres_per_pixel is not None else scale


# --- reading ----------------------------------------------------------------------------------

def _crop_box(recording: Recording, crop: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """The square of source pixels each frame is cut to; without ``crop`` the largest, centred."""
    if crop is None:
        side = min(recording.width, recording.height)
        return (recording.width - side) // 2, (recording.height - side) // 2, side, side
    x, y, width, height = crop
    if x + width > recording.width or y + height > recording.height:
        raise DataError(f"{recording.path}: --crop {x},{y},{width},{height} reaches past its "
                        f"{recording.width}×{recording.height} frames")
    return crop


def _rate(recording: Recording, fps: float | None) -> float:
    if fps is not None:
        return fps
    if recording.fps is None:
        what = "a folder of images has" if recording.images else "its container gives"
        raise DataError(f"{recording.path}: {what} no frame rate; pass --fps")
    return recording.fps


def _check_interval(recording: Recording, index: int, previous: float | None, time: float | None, fps: float) -> None:
    """A frame's time against the one before it at the container's rate: a variable rate is refused."""
    if time is None:
        raise DataError(f"{recording.path}: frame {index} has no timestamp; pass --fps to take the frames as "
                        "evenly spaced")
    if previous is not None and abs(time - previous - 1 / fps) > VFR_TOLERANCE / fps + TIME_BASE_SLACK:
        raise DataError(f"{recording.path}: variable frame rate: frame {index} comes {1000 * (time - previous):.1f} ms "
                        f"after the one before, not {1000 / fps:.1f} ms ({fps:g} fps); pass --fps to take the frames "
                        "as evenly spaced at that rate")


@dataclass
class _Read:
    """A recording's kept frames, averaged down, and what the sidecar records of it."""

    recording: Recording
    frames: list[np.ndarray]
    decoded: int
    sha256: str


def _read(recording: Recording, options: ImportOptions, box: tuple[int, int, int, int], fps: float,
          held: int) -> _Read:
    """Stream the recording, keeping every stride-th frame cropped and averaged down; the bytes held
    (``held`` before it) are checked against the dataset limit as frames come."""
    x, y, width, height = box
    kept: list[np.ndarray] = []
    previous, decoded = None, 0
    for decoded, (time, frame) in enumerate(recording.frames(), start=1):
        if options.fps is None:
            _check_interval(recording, decoded - 1, previous, time, fps)
            previous = time
        if (decoded - 1) % options.stride:
            continue
        image = Image.fromarray(frame).resize((options.size, options.size), Image.Resampling.BOX,
                                              box=(x, y, x + width, y + height))
        kept.append(np.asarray(image))
        check_dataset_bytes(held + len(kept) * options.frame_bytes,
                            f"{recording.path}: its frames kept at {options.size}×{options.size}",
                            "raise --stride, lower --size or import fewer recordings")
    if not decoded:
        raise DataError(f"{recording.path}: holds no frames")
    return _Read(recording, kept, decoded, recording.sha256())


# --- cutting ----------------------------------------------------------------------------------

#: (split of a recording, file role, member, frames per sequence: "clip" or "test")
_PLAN = (("train", "train", "train_x", "clip"), ("valid", "train", "valid_x", "clip"),
         ("test", "train", "test_x", "clip"), ("test", "test", "test_x", "test"))

Starts = dict[tuple[str, str], list[tuple[int, int]]]  # (role, member) → (recording, first kept frame) per sequence


def _parts(n: int, options: ImportOptions) -> dict[str, tuple[int, int]]:
    """Each split's [first, end) of a recording's ``n`` kept frames, in time order."""
    n_test, n_valid = round(n * options.test_fraction), round(n * options.valid_fraction)
    return {"train": (0, n - n_valid - n_test), "valid": (n - n_valid - n_test, n - n_test), "test": (n - n_test, n)}


def _whole_recordings(reads: list[_Read], options: ImportOptions) -> list[dict[str, tuple[int, int]]]:
    """``--split-by recording``: each recording's frames all go to the split in whose share of the
    pooled frames (in the order given: train first, test last) its middle frame falls."""
    sizes = [len(read.frames) for read in reads]
    total, before, parts = sum(sizes), 0, []
    for n in sizes:
        middle = (before + n / 2) / total
        split = ("train" if middle < options.fractions["train"]
                 else "valid" if middle < 1 - options.test_fraction else "test")
        parts.append({split: (0, n)})
        before += n
    return parts


def _cut(reads: list[_Read], options: ImportOptions) -> Starts:
    """Where each sequence starts, by file and member; a recording too short for one sequence of
    each is refused, naming it."""
    starts: Starts = {(role, key): [] for _, role, key, _ in _PLAN}
    whole = _whole_recordings(reads, options) if options.split_by == "recording" else None
    for number, read in enumerate(reads):
        parts = _parts(len(read.frames), options) if whole is None else whole[number]
        for part, role, key, kind in _PLAN:
            if part not in parts:
                continue
            length = options.clip_length if kind == "clip" else options.test_length
            first, end = parts[part]
            found = [(number, start) for start in range(first, end - length + 1, length - options.shared)]
            if not found:
                option = "--clip-length" if kind == "clip" else "--test-length"
                raise DataError(f"{read.recording.path}: too short: of its {len(read.frames)} frames kept "
                                f"(--stride {options.stride}) the {part} split gets {end - first}, fewer than "
                                f"{option} {length}; import a longer recording, or lower {option} or --stride")
            starts[(role, key)] += found
    empty = [part for part, role, key, _ in _PLAN if not starts[(role, key)]]
    if empty:
        raise DataError(f"{reads[-1].recording.path.parent}: --split-by recording leaves the {empty[0]} split without "
                        f"a recording (of {len(reads)}, dealt by their middle frames over the fractions "
                        f"{options.fractions}); import more recordings or change the fractions")
    return starts


# --- writing ----------------------------------------------------------------------------------

def _check_out(out_dir: Path, overwrite: bool) -> None:
    """An imported dataset in ``out_dir`` is replaced only with ``overwrite``; another one never."""
    out_dir = Path(out_dir).expanduser()
    found = sorted(out_dir.glob("*.npz")) if out_dir.is_dir() else []
    others = [path.name for path in found if path.name not in (TRAIN_FILE, TEST_FILE)]
    if others:
        raise DataError(f"{out_dir}: holds another dataset ({', '.join(others)}); choose another --out")
    if found and not overwrite:
        raise DataError(f"{out_dir}: holds an imported dataset already; pass --overwrite to replace it, or choose "
                        "another --out")


def _write_file(path: Path, role: str, starts: Starts, reads: list[_Read], lengths: dict[str, int],
                options: ImportOptions, described: dict[str, object]) -> Path:
    """One file of the pair, each sequence's origin beside its frames, and its sidecar."""
    size, stride = options.size, options.stride
    counts = {key: len(starts.get((role, key), [])) for key in SPLITS}
    with NpzWriter(path) as writer:
        for key in SPLITS:
            found, length = starts.get((role, key), []), lengths[key]
            writer.write(key, (len(found), length, size, size, CHANNELS),
                         (np.stack(reads[number].frames[start:start + length])[None] for number, start in found))
            if found:
                origins = np.array([(number, start * stride) for number, start in found], dtype=np.int64)
                writer.write(beside_key(key, "origin"), origins.shape, [origins], np.int64)
    other = TEST_FILE if role == "train" else TRAIN_FILE
    sidecar = Sidecar.model_validate({**described, "role": role, "data_file": path.name, "companion": other,
                                      "lengths": lengths, "counts": counts, "sha256": sha256_file(path)})
    atomic_write_text(sidecar_path(path), sidecar.model_dump_json(indent=2) + "\n")
    return path


def _described(reads: list[_Read], options: ImportOptions, box: tuple[int, int, int, int],
               fps: float) -> dict[str, object]:
    """What both sidecars record, all but each file's own role, sizes and checksum."""
    dt = options.stride / fps
    recording = RecordingRecord(
        sources=[SourceRecord(name=read.recording.path.name, sha256=read.sha256, frames=read.decoded,
                              width=read.recording.width, height=read.recording.height) for read in reads],
        fps=fps, fps_from="container" if options.fps is None else "--fps", stride=options.stride, crop=box,
        overlap=options.shared, fractions=options.fractions, split_by=options.split_by)
    scale = None if options.metres_per_pixel is None else options.metres_per_pixel * box[2] / options.size
    params = {"image_size": options.size, "n_objects": options.n_objects, "train_length": options.clip_length,
              "test_length": options.test_length, "dt": dt}
    return {"task": TASK, "physics": options.physics or "unknown", "params": params, "ground_truth": {}, "dt": dt,
            "image_size": options.size, "n_objects": options.n_objects, "format": SIDECAR_FORMAT,
            "format_version": FORMAT_VERSION, "channels": CHANNELS, "seed": None, "chunk_size": 1, "device": "cpu",
            "recording": recording, "scale_m_per_px": scale, "known": options.known}


def _open_all(sources: list[Path], options: ImportOptions) -> tuple[list[Recording], tuple[int, int, int, int], float]:
    """The recordings, the crop they share and their rate; all checked before any frame is decoded."""
    if not sources:
        raise PivfUserError("SOURCE: give at least one video file or folder of numbered images")
    recordings = [open_recording(source) for source in sources]
    first = recordings[0]
    for recording in recordings[1:]:
        if (recording.width, recording.height) != (first.width, first.height):
            raise DataError(f"{recording.path}: {recording.width}×{recording.height}, but {first.path.name} is "
                            f"{first.width}×{first.height}; the recordings of a dataset share one frame size")
        if options.fps is None and _rate(recording, None) != _rate(first, None):
            raise DataError(f"{recording.path}: {_rate(recording, None):g} fps, but {first.path.name} is "
                            f"{_rate(first, None):g} fps; the recordings of a dataset share one rate (or pass --fps)")
    return recordings, _crop_box(first, options.crop), _rate(first, options.fps)


def import_recordings(sources: list[Path], out_dir: Path, options: ImportOptions | None = None,
                      overwrite: bool = False) -> tuple[Path, Path]:
    """Write the train file and the test file of a dataset of ``sources`` into ``out_dir``; returns
    their paths. Everything is checked and read before ``out_dir`` is touched; a failure or a kill
    on the way leaves no dataset there."""
    options = options or ImportOptions()
    options.check()
    _check_out(out_dir, overwrite)
    recordings, box, fps = _open_all([Path(source) for source in sources], options)
    reads: list[_Read] = []
    for recording in recordings:
        held = sum(len(read.frames) for read in reads) * options.frame_bytes
        reads.append(_read(recording, options, box, fps, held))
    starts = _cut(reads, options)
    lengths = {"train": dict.fromkeys(SPLITS, options.clip_length), "test": dict.fromkeys(SPLITS, options.test_length)}
    n_bytes = sum(len(found) * lengths[role][key] for (role, key), found in starts.items()) * options.frame_bytes
    check_dataset_bytes(n_bytes, f"{out_dir}: the imported sequences", "raise --stride, lower --size or --overlap")
    described = _described(reads, options, box, fps)
    out_dir = make_dir(out_dir, "--out")
    with staged(out_dir, STAGING) as staging:
        train = _write_file(staging / TRAIN_FILE, "train", starts, reads, lengths["train"], options, described)
        test = _write_file(staging / TEST_FILE, "test", starts, reads, lengths["test"], options, described)
        publish((test, train, sidecar_path(test), sidecar_path(train)), out_dir)
    return out_dir / TRAIN_FILE, out_dir / TEST_FILE
