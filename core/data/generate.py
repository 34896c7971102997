"""Generate a task's dataset into files, chunk by chunk, and cache small ones for ``pivf train``.

A dataset is a pair of files in the original PAIG layout, each with a JSON sidecar:

- the *train file* (``train_length`` frames): ``train_x``, ``valid_x`` and a short ``test_x``;
- the *test file* (``test_length`` frames): ``test_x`` for the extrapolation test, and empty
  ``train_x``/``valid_x`` (the original test files carried 10 unused training sequences).

Both files and their sidecars are written into a hidden folder inside the output folder and moved
into place only once all four are complete, sidecars last: a generation that is killed leaves no
dataset rather than half of one (the loader refuses a pair that lacks a member, naming it). The
hidden folder is named after its process, so the next generation there removes what a killed one
left. Before any work a request is checked: its size against the dataset limit (``limits``), its
constants against the physics, and the files it would replace: another dataset under the same
names (another seed, other sizes) is refused unless the caller asks to overwrite it.

Every chunk of ``task.chunk_size`` sequences draws from its own generator, seeded from
(seed, split, chunk), so a seed gives the same bytes whatever else is generated, and the next chunk
never depends on how many proposals the previous one rejected.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pivf.core.data.dataset import FORMAT_VERSION, SIDECAR_FORMAT, Sidecar, read_sidecar, sidecar_path
from pivf.core.data.limits import check_dataset_bytes
from pivf.core.data.npz import SPLITS, NpzWriter, beside_key, sha256_file
from pivf.core.data.nuisance import Camera
from pivf.core.data.staging import publish, remove_stale, staged, staging_dir
from pivf.core.data.task import Role, Task
from pivf.core.kernel.atomic import atomic_write_text
from pivf.core.kernel.errors import DataError
from pivf.core.kernel.paths import make_dir
from pivf.core.kernel.registry import registry

__all__ = ["check_request", "chunk_generator", "ensure_dataset", "existing_dataset", "file_counts", "frames",
           "generate_dataset", "make_task", "single_threaded"]

#: sequences rendered at once: bounds the float frames held while rendering a chunk
RENDER_BATCH = 128
#: which random stream each split of each file draws from
_STREAMS: dict[tuple[Role, str], int] = {("train", "train_x"): 0, ("train", "valid_x"): 1, ("train", "test_x"): 2,
                                         ("test", "test_x"): 3}

#: the prefix of the hidden folder a dataset is made in
STAGING = ".generating-"
#: what a sidecar records that decides its file's bytes: a file made with other values is another dataset
RECIPE = ("task", "physics", "params", "ground_truth", "counts", "lengths", "seed", "chunk_size", "format_version",
          "device")

#: how the differences of ``RECIPE`` values are named: as the options that set them
_LABELS = {"counts.train_x": "n_train", "counts.valid_x": "n_valid", "counts.test_x": "n_test"}

Progress = Callable[[int], None]
Counts = dict[Role, dict[str, int]]


def make_task(task: Task | str, params: dict[str, Any] | None = None) -> Task:
    if isinstance(task, Task):
        return task
    return registry().create("task", task, **(params or {}))


def chunk_generator(seed: int, stream: int, chunk: int) -> torch.Generator:
    """The CPU generator of one chunk of one split."""
    state = np.random.SeedSequence([seed, stream, chunk]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@contextmanager
def single_threaded(device: str) -> Iterator[None]:
    """One intra-op thread while generating on a CPU.

    Generation is thousands of small tensor operations. Splitting each across threads costs more in
    synchronisation than it saves, and on a machine whose other core is busy it costs far more: on
    a shared 2-core machine the spring_color benchmark ran 8× slower with two threads than with one.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def frames(task: Task, n: int, length: int, seed: int, stream: int, device: str = "cpu",
           progress: Progress | None = None, beside: dict[str, list[np.ndarray]] | None = None) -> Iterator[np.ndarray]:
    """uint8 (≤ RENDER_BATCH, length, H, W, C) arrays that concatenate to n sequences. When ``beside``
    is given, each chunk's object positions, float32 (chunk, length, K, 2), are appended to its
    "positions" list, the inputs of a task recorded under controls (chunk, length, m) to "controls",
    the true states of a task that keeps them (``Task.states_beside``), float64 (chunk, length,
    *state), to "q" and "p", and under the camera's jitter each frame's shift (chunk, length, 2) to
    "shake". Frames pass
    through the camera of the task's ``nuisance`` (``nuisance.Camera``) when it has one."""
    camera = Camera(task.params.nuisance, seed) if task.params.nuisance else None
    for chunk, start in enumerate(range(0, n, task.chunk_size)):
        generator = chunk_generator(seed, stream, chunk)
        with single_threaded(device):
            trajectory = task.simulate(min(task.chunk_size, n - start), length, generator, device)
        if beside is not None:
            beside.setdefault("positions", []).append(trajectory.positions.to("cpu", torch.float32).numpy())
            if trajectory.controls is not None:
                beside.setdefault("controls", []).append(trajectory.controls.to("cpu", torch.float32).numpy())
            if task.states_beside:
                beside.setdefault("q", []).append(trajectory.q.to("cpu", torch.float64).numpy())
                beside.setdefault("p", []).append(trajectory.p.to("cpu", torch.float64).numpy())
        for first in range(0, len(trajectory), RENDER_BATCH):
            part = trajectory[first:first + RENDER_BATCH]
            with single_threaded(device):
                if camera is None:
                    batch = task.render(part).cpu().numpy()
                else:  # draws from the chunk's generator after the simulation: the states stay the clean ones
                    batch, filmed = camera.film(task, part, generator)
                    for what, values in filmed.items():
                        if beside is not None:
                            beside.setdefault(what, []).append(values)
            if progress is not None:
                progress(batch.shape[0])
            yield batch


def file_counts(n_train: int, n_valid: int, n_test: int) -> Counts:
    """Sequences per split of each file: the train file holds short test sequences too."""
    return {"train": {"train_x": n_train, "valid_x": n_valid, "test_x": n_test}, "test": {"test_x": n_test}}


def check_request(task: Task, counts: Counts) -> None:
    """What can be refused before any work: constants the physics rejects, a dataset over the limit."""
    task.check_physics()
    frame = task.params.image_size ** 2 * task.channels
    n_bytes = sum(n * task.length(role) * frame for role, splits in counts.items() for n in splits.values())
    n_train, n_valid, n_test = counts["train"].values()
    size = task.params.image_size
    check_dataset_bytes(n_bytes, f"task '{task.name}' with n_train {n_train}, n_valid {n_valid}, n_test {n_test} "
                                 f"sequences of {size}×{size}×{task.channels} frames",
                        "lower the sequence counts or the frame size")


def _made_by(task: Task, role: Role, counts: dict[str, int], seed: int, device: str) -> dict[str, object]:
    """What the sidecar of ``task``'s ``role`` file records, all but the file's checksum."""
    other: Role = "test" if role == "train" else "train"
    return {**task.describe(), "format": SIDECAR_FORMAT, "format_version": FORMAT_VERSION, "role": role,
            "data_file": task.file_name(role), "companion": task.file_name(other), "channels": task.channels,
            "lengths": {key: task.length(role) for key in SPLITS},
            "counts": {key: counts.get(key, 0) for key in SPLITS}, "seed": seed, "chunk_size": task.chunk_size,
            "device": str(device)}


def _recipe_differences(recorded: dict[str, object], asked: dict[str, object], prefix: str = "") -> list[str]:
    """'seed 0 (asked: 1)' for each ``RECIPE`` value (or entry of one) that differs."""
    found = []
    for key in asked:
        old, new = recorded.get(key), asked[key]
        if isinstance(old, dict) and isinstance(new, dict):
            found += _recipe_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            found.append(f"{_LABELS.get(prefix + key, prefix + key)} {old} (asked: {new})")
    return found


def _differences(path: Path, asked: dict[str, object]) -> list[str]:
    """How the file at ``path`` and its sidecar differ from the file ``asked`` describes."""
    if not path.is_file():
        return [f"{path.name} missing"]
    try:
        recorded = read_sidecar(path)
    except DataError:
        return [f"{sidecar_path(path).name} unreadable"]
    if recorded is None:
        return [f"{path.name} has no sidecar"]
    return _recipe_differences(_recipe(recorded.model_dump()), _recipe(asked))


def _recipe(fields: dict[str, object]) -> dict[str, object]:
    """The ``RECIPE`` values of a sidecar's fields; of the device only its kind decides the bytes."""
    return {key: str(fields[key]).split(":")[0] if key == "device" else fields[key] for key in RECIPE}


def existing_dataset(task: Task, out_dir: Path, counts: Counts, seed: int, device: str) -> tuple[Path, Path] | None:
    """The train and test file when ``out_dir`` holds this very dataset already, None when it holds
    none of its files, and a ``DataError`` naming the differences when another dataset (another
    seed, other sizes) or part of one lies under its names."""
    paths = {role: Path(out_dir).expanduser() / task.file_name(role) for role in counts}
    if not any(f.exists() for path in paths.values() for f in (path, sidecar_path(path))):
        return None
    differences = [d for role, path in paths.items()
                   for d in _differences(path, _made_by(task, role, counts[role], seed, device))]
    if differences:
        raise DataError(f"{paths['train']}: a different dataset is there already "
                        f"({'; '.join(dict.fromkeys(differences))}); pass --overwrite to replace it, "
                        f"or choose another --out")
    return paths["train"], paths["test"]


def _write_file(task: Task, role: Role, out_dir: Path, counts: dict[str, int], seed: int, device: str,
                progress: Progress | None) -> Path:
    path = out_dir / task.file_name(role)
    size, channels = task.params.image_size, task.channels
    length = task.length(role)
    with NpzWriter(path) as writer:
        for key in SPLITS:
            n = counts.get(key, 0)
            beside: dict[str, list[np.ndarray]] = {}
            chunks = frames(task, n, length, seed, _STREAMS[(role, key)], device, progress, beside) if n else iter(())
            writer.write(key, (n, length, size, size, channels), chunks)
            for what, parts in beside.items():
                stored = np.concatenate(parts)
                writer.write(beside_key(key, what), stored.shape, [stored], stored.dtype.type)
    sidecar = Sidecar.model_validate({**_made_by(task, role, counts, seed, device), "sha256": sha256_file(path)})
    atomic_write_text(sidecar_path(path), sidecar.model_dump_json(indent=2) + "\n")
    return path


def generate_dataset(task: Task | str, out_dir: Path, n_train: int, n_valid: int, n_test: int, seed: int = 0,
                     device: str = "cpu", params: dict[str, Any] | None = None,
                     progress: Progress | None = None, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the train file and the test file of ``task`` into ``out_dir``; returns their paths.
    The same dataset there already is kept as it is; another one is replaced only with ``overwrite``."""
    task = make_task(task, params)
    counts = file_counts(n_train, n_valid, n_test)
    check_request(task, counts)
    found = None if overwrite else existing_dataset(task, out_dir, counts, seed, device)
    if found is not None:
        return found
    out_dir = make_dir(out_dir, "--out")
    with staged(out_dir, STAGING) as staging:
        train = _write_file(task, "train", staging, counts["train"], seed, device, progress)
        test = _write_file(task, "test", staging, counts["test"], seed, device, progress)
        publish((test, train, sidecar_path(test), sidecar_path(train)), out_dir)  # the train sidecar completes the set
    return out_dir / train.name, out_dir / test.name


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the file ``path`` (made if need be): a second holder waits."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_dataset(task: str, n_train: int, n_valid: int, n_test: int, seed: int, cache_dir: Path,
                   params: dict[str, Any] | None = None, device: str = "cpu") -> Path:
    """The train file of a cached dataset, generated on first use: ``pivf train`` needs no download.

    The cache folder is named by a hash of everything that decides the bytes. It is filled under a
    lock (``<folder>.lock`` beside it), in a temporary folder renamed into place: a second run
    asking for it waits and then uses it, and an interrupted one leaves nothing the next one uses.
    """
    instance = make_task(task, params)
    check_request(instance, file_counts(n_train, n_valid, n_test))
    key = json.dumps({"describe": instance.describe(), "n": [n_train, n_valid, n_test], "seed": seed,
                      "format": FORMAT_VERSION, "device": torch.device(device).type}, sort_keys=True)
    folder = Path(cache_dir).expanduser() / f"{instance.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    train_path = folder / instance.file_name("train")

    def complete() -> bool:
        return sidecar_path(train_path).is_file() and sidecar_path(folder / instance.file_name("test")).is_file()

    if complete():
        return train_path
    make_dir(folder.parent, "data.cache_dir")
    with _locked(folder.with_name(f"{folder.name}.lock")):
        if complete():  # filled while this run waited
            return train_path
        remove_stale(folder.parent, f".{folder.name}.")
        staging = staging_dir(folder.parent, f".{folder.name}.")
        try:
            generate_dataset(instance, staging, n_train, n_valid, n_test, seed, device)
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete leftover; no one else writes it now
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return train_path
