"""Generate a task's dataset into files, chunk by chunk, and cache small ones for ``pivf train``.

A dataset is a pair of files in the original PAIG layout, each with a JSON sidecar:

- the *train file* (``train_length`` frames): ``train_x``, ``valid_x`` and a short ``test_x``;
- the *test file* (``test_length`` frames): ``test_x`` for the extrapolation test, and empty
  ``train_x``/``valid_x`` (the original test files carried 10 unused training sequences).

Both files and their sidecars are written into a hidden folder inside the output folder and moved
into place only once all four are complete, sidecars last: a generation that is killed leaves no
dataset rather than half of one (the loader refuses a pair that lacks a member, naming it).

Every chunk of ``task.chunk_size`` sequences draws from its own generator, seeded from
(seed, split, chunk), so a seed gives the same bytes whatever else is generated, and the next chunk
never depends on how many proposals the previous one rejected.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pivf.core.data.dataset import SIDECAR_FORMAT, FORMAT_VERSION, Sidecar, sidecar_path
from pivf.core.data.npz import SPLITS, NpzWriter, beside_key, sha256_file
from pivf.core.data.task import Role, Task
from pivf.core.registry import registry
from pivf.core.atomic import atomic_write_text
from pivf.core.paths import make_dir

#: sequences rendered at once: bounds the float frames held while rendering a chunk
RENDER_BATCH = 128
#: which random stream each split of each file draws from
_STREAMS: dict[tuple[Role, str], int] = {("train", "train_x"): 0, ("train", "valid_x"): 1, ("train", "test_x"): 2,
                                         ("test", "test_x"): 3}

Progress = Callable[[int], None]


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
    "positions" list, and the inputs of a task recorded under controls (chunk, length, m) to "controls"."""
    for chunk, start in enumerate(range(0, n, task.chunk_size)):
        with single_threaded(device):
            trajectory = task.simulate(min(task.chunk_size, n - start), length, chunk_generator(seed, stream, chunk), device)
        if beside is not None:
            beside.setdefault("positions", []).append(trajectory.positions.to("cpu", torch.float32).numpy())
            if trajectory.controls is not None:
                beside.setdefault("controls", []).append(trajectory.controls.to("cpu", torch.float32).numpy())
        for first in range(0, len(trajectory), RENDER_BATCH):
            with single_threaded(device):
                batch = task.render(trajectory[first:first + RENDER_BATCH]).cpu().numpy()
            if progress is not None:
                progress(batch.shape[0])
            yield batch


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
                writer.write(beside_key(key, what), stored.shape, [stored], np.float32)
    other: Role = "test" if role == "train" else "train"
    sidecar = Sidecar(**task.describe(), format=SIDECAR_FORMAT, format_version=FORMAT_VERSION, role=role,
                      data_file=path.name, companion=task.file_name(other), channels=channels,
                      lengths={key: length for key in SPLITS}, counts={key: counts.get(key, 0) for key in SPLITS},
                      seed=seed, chunk_size=task.chunk_size, device=str(device), sha256=sha256_file(path))
    atomic_write_text(sidecar_path(path), sidecar.model_dump_json(indent=2) + "\n")
    return path


def generate_dataset(task: Task | str, out_dir: Path, n_train: int, n_valid: int, n_test: int, seed: int = 0,
                     device: str = "cpu", params: dict[str, Any] | None = None,
                     progress: Progress | None = None) -> tuple[Path, Path]:
    """Write the train file and the test file of ``task`` into ``out_dir``; returns their paths."""
    task = make_task(task, params)
    out_dir = make_dir(out_dir, "--out")
    staging = Path(tempfile.mkdtemp(prefix=".generating-", dir=out_dir))
    try:
        train = _write_file(task, "train", staging, {"train_x": n_train, "valid_x": n_valid, "test_x": n_test},
                            seed, device, progress)
        test = _write_file(task, "test", staging, {"test_x": n_test}, seed, device, progress)
        for member in (test, train, sidecar_path(test), sidecar_path(train)):  # the train sidecar completes the set
            os.replace(member, out_dir / member.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / train.name, out_dir / test.name


def ensure_dataset(task: str, n_train: int, n_valid: int, n_test: int, seed: int, cache_dir: Path,
                   params: dict[str, Any] | None = None, device: str = "cpu") -> Path:
    """The train file of a cached dataset, generated on first use: ``pivf train`` needs no download.

    The cache folder is named by a hash of everything that decides the bytes, and is filled in a
    temporary folder renamed into place, so concurrent runs and interrupted ones never see half a
    dataset.
    """
    instance = make_task(task, params)
    key = json.dumps({"describe": instance.describe(), "n": [n_train, n_valid, n_test], "seed": seed,
                      "format": FORMAT_VERSION, "device": torch.device(device).type}, sort_keys=True)
    folder = Path(cache_dir).expanduser() / f"{instance.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    train_path = folder / instance.file_name("train")
    if sidecar_path(train_path).is_file() and sidecar_path(folder / instance.file_name("test")).is_file():
        return train_path
    make_dir(folder.parent, "data.cache_dir")
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        generate_dataset(instance, staging, n_train, n_valid, n_test, seed, device)
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete leftover
        os.replace(staging, folder)
    except OSError:
        if not sidecar_path(train_path).is_file():  # lost a race only if the winner finished
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return train_path
