"""Use a finished run: re-evaluate its checkpoint on the test split (extrapolation included), and
render rollouts from it: forwards, backwards, at another speed, or from the prior. Both refuse a
dataset that changed since the run trained on it (``data.provenance``) unless told to accept it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pivf.core.data.dataset import Dataset
from pivf.core.data.frames import as_float
from pivf.core.data.provenance import check_dataset
from pivf.core.kernel.build import build_objective, build_pipeline, open_dataset
from pivf.core.kernel.config import ExperimentConfig
from pivf.core.kernel.errors import PivfUserError
from pivf.core.kernel.images import frame_grid, save_png
from pivf.core.kernel.inference import predict, sample
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.training.checkpoints import checkpoint_path, load_checkpoint, restoring
from pivf.core.training.devices import describe_device, resolve_device
from pivf.core.training.report import parameter_report, recording_report
from pivf.core.training.runs import load_run_config
from pivf.core.training.train import Log

__all__ = ["evaluate_run", "render_rollouts", "restore"]


def load_run(run_dir: Path, checkpoint: str = "best") -> tuple[ExperimentConfig, dict[str, Any]]:
    config = load_run_config(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    if not path.is_file():
        raise PivfUserError(f"{run_dir}: no checkpoint '{checkpoint}' (looked for {path})")
    return config, load_checkpoint(path)


def restore(run_dir: Path, checkpoint: str, device: str,
            log: Log) -> tuple[ExperimentConfig, dict[str, Any], Pipeline, Dataset]:
    """The run's config, checkpoint, trained pipeline (on ``device``) and dataset."""
    config, state = load_run(run_dir, checkpoint)
    dataset = open_dataset(config, log)
    pipeline = build_pipeline(config)
    with restoring(checkpoint_path(run_dir, checkpoint)):
        pipeline.load_state_dict(state["model"])
    return config, state, pipeline.to(resolve_device(device, option="--device")), dataset


def evaluate_run(run_dir: Path, checkpoint: str = "best", device: str = "auto", log: Log = print,
                 accept_changed_data: bool = False) -> dict[str, Any]:
    config, state, pipeline, dataset = restore(run_dir, checkpoint, device, log)
    check_dataset(run_dir, dataset, accept_changed_data, log)
    torch_device = next(pipeline.parameters()).device
    objective = build_objective(config)
    controls = None if dataset.test_controls is None else dataset.test_controls.to(torch_device)
    test = objective.evaluate(pipeline, dataset.test.to(torch_device), config.training.batch_size, controls)
    result = {"task": config.data.task, "physics": config.physics.name, "integrator": config.integrator.name,
              "checkpoint": checkpoint, "epoch": state["epoch"], "device": describe_device(torch_device),
              "eval": {"split": "test", **objective.report(test)},
              "params": parameter_report(pipeline, dataset.info.ground_truth)}
    physical = recording_report(pipeline, dataset.info)
    if physical is not None:
        result["physical"] = physical
    return result


def render_rollouts(run_dir: Path, out: Path, n: int = 4, steps: int = 30, speed: float = 1.0, prior: bool = False,
                    checkpoint: str = "best", device: str = "auto", log: Log = print,
                    accept_changed_data: bool = False) -> Path:
    """A PNG of rollouts: from the first ``n`` test sequences (truth row above each prediction), or,
    with ``prior``, from states sampled from the encoder's prior. 2 plays twice as fast; a negative
    ``speed`` runs time backwards from the state inferred at the *last* frames of each sequence.
    The truth row starts at the frame the prediction starts from and, for whole-number speeds,
    keeps pace with it."""
    config, _, pipeline, dataset = restore(run_dir, checkpoint, device, log)
    check_dataset(run_dir, dataset, accept_changed_data, log)
    torch_device = next(pipeline.parameters()).device
    if prior:
        rows = list(sample(pipeline, n, steps, speed, torch.Generator(device=torch_device).manual_seed(0)))
    else:
        frames = as_float(dataset.test[:n].to(torch_device))
        seen = build_objective(config).input_steps
        inputs, truth = (frames[:, -seen:], frames.flip(1)) if speed < 0 else (frames[:, :seen], frames[:, seen - 1:])
        if float(speed).is_integer():
            truth = truth[:, ::int(abs(speed))]
        predicted = predict(pipeline, inputs, steps, speed)
        rows = [row for pair in zip(truth, predicted, strict=True) for row in pair]
    save_png(frame_grid(rows), Path(out))
    return Path(out)
