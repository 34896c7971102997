"""Run directories: everything needed to understand and resume a run, each in a folder of its own.

A run directory is created exclusively: two runs never share one, even when started in the same
second (the default name then gets a ``-2``, ``-3`` suffix), and a name given in
``logging.run_name`` that is already taken is an error unless the caller asks to overwrite, which
removes the old run first, so no stale ``best.pt`` survives under a new config.
"""
from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pivf.core.atomic import atomic_write_text
from pivf.core.config import ExperimentConfig, dump_yaml, read_config_file, validate_plugin_sections
from pivf.core.data.dataset import Dataset
from pivf.core.errors import ConfigError, PivfUserError
from pivf.core.paths import make_dir
from pivf.core.plugin import format_validation_error


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """A run directory's config (older layouts upgraded), validated against the installed plugins."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PivfUserError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        config = ExperimentConfig.model_validate(read_config_file(path))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    return validate_plugin_sections(config)


def new_run_dir(config: ExperimentConfig, overwrite: bool = False) -> Path:
    """A fresh run directory under ``logging.out`` holding ``config.yaml``."""
    parent = make_dir(config.logging.out, "logging.out")
    if config.logging.run_name:
        run_dir = parent / config.logging.run_name
        if overwrite:
            remove_run_dir(run_dir)
        _make_exclusive(run_dir, f"logging.run_name: {run_dir} already exists; choose another name, "
                                 "or pass --overwrite to replace that run")
    else:
        stem = (f"{config.data.task}-{config.physics.name}-{config.integrator.name}-s{config.training.seed}-"
                f"{time.strftime('%Y%m%d-%H%M%S')}")
        for attempt in itertools.count(1):
            run_dir = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
            if _make_exclusive(run_dir, None):
                break
    try:
        write_config(run_dir, config)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # no half-made run left behind
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


def remove_run_dir(run_dir: Path) -> None:
    """Delete an earlier run (``--overwrite``); a folder that is not a run directory is left alone."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir() or not ((run_dir / "config.yaml").is_file() or not any(run_dir.iterdir())):
        raise PivfUserError(f"--overwrite: {run_dir} is not a run directory (no config.yaml); not deleting it")
    shutil.rmtree(run_dir)


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
