"""Re-evaluate a finished run's checkpoint on its test split, extrapolation included."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pivf.core.build import build_pipeline, open_dataset
from pivf.core.config import ExperimentConfig
from pivf.core.errors import PivfUserError
from pivf.core.objectives import make_objective
from pivf.core.report import parameter_report
from pivf.core.train import Log, describe_device, load_run_config, resolve_device


def load_run(run_dir: Path, checkpoint: str = "best") -> tuple[ExperimentConfig, dict[str, Any]]:
    config = load_run_config(run_dir)
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise PivfUserError(f"{run_dir}: no checkpoint '{checkpoint}' (looked for {path})")
    return config, torch.load(path, map_location="cpu", weights_only=False)


def evaluate_run(run_dir: Path, checkpoint: str = "best", device: str = "auto", log: Log = print) -> dict[str, Any]:
    config, state = load_run(run_dir, checkpoint)
    torch_device = resolve_device(device)
    dataset = open_dataset(config, log)
    pipeline = build_pipeline(config)
    pipeline.load_state_dict(state["model"])
    pipeline.to(torch_device)
    objective = make_objective(config)
    test = objective.evaluate(pipeline, dataset.test.to(torch_device), config.training.batch_size)
    return {"task": config.data.task, "physics": config.physics.name, "integrator": config.integrator.name,
            "checkpoint": checkpoint, "epoch": state["epoch"], "device": describe_device(torch_device),
            "eval": {"split": "test", **objective.report(test)},
            "params": parameter_report(pipeline, dataset.info.ground_truth)}
