"""Run directories: everything needed to understand and resume a run."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pivf.core.atomic import atomic_write_text
from pivf.core.config import ExperimentConfig, dump_yaml


def new_run_dir(config: ExperimentConfig) -> Path:
    name = config.logging.run_name or (
        f"{config.data.task}-{config.physics.name}-{config.integrator.name}-s{config.training.seed}-"
        f"{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = Path(config.logging.out).expanduser() / name
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(config))
    return run_dir


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def checkpoint_path(run_dir: Path, name: str) -> Path:
    """``best`` or ``last`` of a run directory."""
    return Path(run_dir) / "checkpoints" / f"{name}.pt"
