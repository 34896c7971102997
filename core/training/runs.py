"""Run directories: everything needed to understand and resume a run, each in a folder of its own.

A run directory is created exclusively: two runs never share one, even when started in the same
second (the default name then gets a ``-2``, ``-3`` suffix), and a name given in
``logging.run_name`` that is already taken is an error unless the caller asks to overwrite.

pivf deletes nothing of the user's. It marks each run directory it creates with a ``.pivf-run``
file, and ``--overwrite`` replaces only a run: a folder holding that marker, or, for runs made
before the marker existed, ``config.yaml`` and ``checkpoints/``. Even then it refuses, deleting
nothing, when the folder holds anything pivf does not write there (``RUN_FILES``, and
``CHECKPOINT_FILES`` in ``checkpoints/``): notes or data a user put into a run are theirs. Only
pivf's own files are deleted, so no stale ``best.pt`` survives under a new config.

One process trains a run at a time: it holds an exclusive ``flock`` on the run's ``.pivf-lock``
file while it trains (the kernel releases it when the process ends, also when it is killed), and a
second ``--overwrite`` or ``--resume`` of that run is refused, naming the holder, touching nothing.
"""
from __future__ import annotations

import fcntl
import fnmatch
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pivf.core.data.dataset import Dataset
from pivf.core.kernel.atomic import atomic_write_text
from pivf.core.kernel.config import ExperimentConfig, dump_yaml, read_config_file, validate_plugin_sections
from pivf.core.kernel.errors import ConfigError, PivfUserError
from pivf.core.kernel.paths import make_dir
from pivf.core.kernel.plugin import format_validation_error

__all__ = ["LOCK", "MARKER", "load_run_config", "lock_run", "new_run_dir", "run_finished", "unlock_run",
           "with_dataset_sizes", "write_config", "write_metrics"]

MARKER = ".pivf-run"
LOCK = ".pivf-lock"
#: what pivf writes at the top of a run directory (TensorBoard's event files and the temporaries of
#: atomic writes included); anything else there is the user's
RUN_FILES = (MARKER, LOCK, "config.yaml", "dataset.json", "metrics.json", "rollouts.png", "rollout.png",
             "energy.png", "templates.png", "events.out.tfevents.*", ".*.tmp")
CHECKPOINT_FILES = ("best.pt", "last.pt", ".*.tmp")
#: sections every config.yaml pivf has written holds; a file without them is not a run's config
RUN_SECTIONS = ("data", "physics", "integrator", "encoder", "decoder", "training", "logging")

#: run directory (resolved) → the open lock file this process holds
_held: dict[Path, int] = {}


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """A run directory's config (older layouts upgraded), validated against the installed plugins."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PivfUserError(f"{run_dir} is not a run directory (no config.yaml)")
    raw = read_config_file(path)
    missing = [section for section in RUN_SECTIONS if section not in raw]
    if missing:  # an empty or hand-made file would evaluate as all defaults, reporting on data of its own
        what = "it is empty" if not raw else f"no {', '.join(missing)} section"
        raise ConfigError(f"{path}: not a pivf run config ({what}); pivf records every section of a run's config")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    return validate_plugin_sections(config)


def new_run_dir(config: ExperimentConfig, overwrite: bool = False) -> Path:
    """A fresh run directory under ``logging.out`` holding its marker and ``config.yaml``, locked by
    this process until ``unlock_run`` or its end."""
    parent = make_dir(config.logging.out, "logging.out")
    if config.logging.run_name:
        run_dir = parent / config.logging.run_name
        if overwrite and os.path.lexists(run_dir):
            _take_over(run_dir)
        else:
            _make_exclusive(run_dir, f"logging.run_name: {run_dir} already exists; choose another name, "
                                     "or pass --overwrite to replace that run")
            lock_run(run_dir)
    else:
        stem = (f"{config.data.task}-{config.physics.name}-{config.integrator.name}-s{config.training.seed}-"
                f"{time.strftime('%Y%m%d-%H%M%S')}")
        for attempt in itertools.count(1):
            run_dir = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
            if _make_exclusive(run_dir, None):
                break
        lock_run(run_dir)
    try:
        atomic_write_text(run_dir / MARKER, json.dumps({"pivf_run": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
                          + "\n")
        write_config(run_dir, config)
    except BaseException:
        _discard(run_dir)  # no half-made run left behind
        raise
    return run_dir


def _make_exclusive(run_dir: Path, taken: str | None) -> bool:
    """Create ``run_dir``; False when it exists (or a ``PivfUserError`` saying ``taken``)."""
    try:
        run_dir.mkdir()
    except FileExistsError:
        if taken is None:
            return False
        raise PivfUserError(taken) from None
    except OSError as exc:
        raise PivfUserError(f"logging.out: cannot create the run directory {run_dir} ({exc.strerror})") from None
    return True


def _take_over(run_dir: Path) -> None:
    """``--overwrite``: lock an earlier run and delete what pivf wrote in it, keeping the folder (and
    its lock) for the new run. Refused, deleting nothing, unless it is a run that holds nothing of the user's."""
    refuse = f"--overwrite: {run_dir}"
    if run_dir.is_symlink():
        raise PivfUserError(f"{refuse} is a symbolic link; not following it (remove the link or choose another name)")
    if not run_dir.is_dir():
        raise PivfUserError(f"{refuse} is not a run directory (not a folder); not deleting it")
    if not _is_run_dir(run_dir) and any(run_dir.iterdir()):
        raise PivfUserError(f"{refuse} is not a run directory (no {MARKER} marker, nor config.yaml and "
                            "checkpoints/); not deleting it")
    foreign = _first_foreign(run_dir)
    if foreign is not None:
        raise PivfUserError(f"{refuse} holds {foreign}, which pivf did not write; not deleting that run "
                            "(move it out, or choose another name)")
    lock_run(run_dir)
    _delete_run_files(run_dir, keep=LOCK)


def _is_run_dir(run_dir: Path) -> bool:
    """A folder pivf made for a run: marked, or, from before the marker, config.yaml and checkpoints/."""
    run_dir = Path(run_dir)
    return (run_dir / MARKER).is_file() or ((run_dir / "config.yaml").is_file() and (run_dir / "checkpoints").is_dir())


def _first_foreign(run_dir: Path) -> str | None:
    """The first entry of ``run_dir`` pivf does not write there (a link counts as foreign), or None."""
    for entry in sorted(os.scandir(run_dir), key=lambda e: e.name):
        if entry.name == "checkpoints" and entry.is_dir(follow_symlinks=False):
            inner = next((e.name for e in sorted(os.scandir(entry.path), key=lambda e: e.name)
                          if not _written_by_pivf(e, CHECKPOINT_FILES)), None)
            if inner is not None:
                return f"checkpoints/{inner}"
        elif not _written_by_pivf(entry, RUN_FILES):
            return entry.name
    return None


def _written_by_pivf(entry: os.DirEntry, patterns: tuple[str, ...]) -> bool:
    return entry.is_file(follow_symlinks=False) and any(fnmatch.fnmatchcase(entry.name, p) for p in patterns)


def _delete_run_files(run_dir: Path, keep: str | None) -> None:
    """Delete the files pivf writes in a run directory (all but ``keep``); a user's file is never touched."""
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        for entry in os.scandir(checkpoints):
            if _written_by_pivf(entry, CHECKPOINT_FILES):
                os.unlink(entry.path)
        if not any(checkpoints.iterdir()):
            checkpoints.rmdir()
    for entry in os.scandir(run_dir):
        if entry.name != keep and _written_by_pivf(entry, RUN_FILES):
            os.unlink(entry.path)


def _discard(run_dir: Path) -> None:
    """Undo ``new_run_dir`` after a failed write: pivf's files, the lock and, once empty, the folder."""
    _delete_run_files(run_dir, keep=None)
    unlock_run(run_dir)
    if not any(run_dir.iterdir()):
        run_dir.rmdir()


def lock_run(run_dir: Path) -> None:
    """Hold ``run_dir``'s lock for this process until ``unlock_run`` or the process ends (then the
    kernel releases it, also on SIGKILL). Held by another process: a one-line error naming it."""
    key = Path(run_dir).resolve()
    if key in _held:
        return
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise PivfUserError(f"{run_dir}: cannot open its lock file {LOCK} ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise PivfUserError(f"{run_dir} is being trained by another process"
                            f"{f' (pid {holder})' if holder else ''}; wait for it to end, or stop it") from None
    _held[key] = fd


def unlock_run(run_dir: Path) -> None:
    """Release ``run_dir``'s lock if this process holds it."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def _lock_holder(fd: int) -> str | None:
    """The pid holding the flock on ``fd``'s file, read from Linux's /proc/locks; None elsewhere."""
    inode = str(os.fstat(fd).st_ino)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for fields in map(str.split, lines):
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2148170 0 EOF"; a waiting process's line has "->" second
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == inode:
            return fields[4]
    return None


def run_finished(run_dir: Path) -> bool:
    """A run writes metrics.json last, once it has evaluated on the test split."""
    return (Path(run_dir) / "metrics.json").is_file()


def write_config(run_dir: Path, config: ExperimentConfig) -> None:
    atomic_write_text(run_dir / "config.yaml", dump_yaml(config))


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def with_dataset_sizes(config: ExperimentConfig, dataset: Dataset) -> ExperimentConfig:
    """The config with ``data.n_*`` set to the sizes of the dataset actually used, for config.yaml."""
    sizes = {"n_train": len(dataset.train), "n_valid": len(dataset.valid), "n_test": len(dataset.test)}
    return config.model_copy(update={"data": config.data.model_copy(update=sizes)})
