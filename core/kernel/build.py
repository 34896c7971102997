"""Turn a resolved config into plugin instances and a pipeline."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pivf.core.data.dataset import Dataset, load_dataset
from pivf.core.data.generate import ensure_dataset
from pivf.core.kernel.config import ExperimentConfig, PluginChoice
from pivf.core.kernel.errors import ConfigError, DataError
from pivf.core.kernel.objective import Objective
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.kernel.registry import registry

__all__ = ["build_objective", "build_pipeline", "create_plugin", "generated_task_params", "open_dataset"]


def create_plugin(kind: str, choice: PluginChoice) -> Any:
    """Instantiate a plugin from a validated section (``validate_plugin_sections`` filled in what the
    data implies)."""
    cls = registry().get(kind, choice.name)
    return cls(cls.validate_params(choice.params))


#: a learned physics draws from the run's seed plus this, a stream of its own
PHYSICS_SEED_OFFSET = 1


def build_pipeline(config: ExperimentConfig) -> Pipeline:
    """The four plugins, built in order. A learned physics (a network) draws its initial weights
    from the random stream but hands the stream on as it found it, so one seed gives the encoder
    and decoder the same initial weights whichever physics sits between them: swapping the
    equations of motion is then a controlled comparison."""
    encoder = create_plugin("encoder", config.encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch.initial_seed() + PHYSICS_SEED_OFFSET)  # its own numbers, not the decoder's
        physics = create_plugin("physics", config.physics)
    pipeline = Pipeline(
        encoder=encoder,
        physics=physics,
        integrator=create_plugin("integrator", config.integrator),
        decoder=create_plugin("decoder", config.decoder),
        dt=config.data.dt,
    )
    pipeline.bf16 = config.training.bf16
    return pipeline


def build_objective(config: ExperimentConfig) -> Objective:
    return create_plugin("objective", config.objective)


def generated_task_params(config: ExperimentConfig) -> dict[str, Any]:
    """The task params of a generated dataset: ``data.task_params``, plus the frame size and time
    step where the data section departs from the task's defaults (``--set data.image_size=16``) and
    the camera's nuisances when there are any (``--set data.nuisance=phone``)."""
    data = config.data
    defaults = registry().get("task", data.task).validate_params()
    params = {field: getattr(data, field) for field in ("image_size", "dt")
              if getattr(data, field) != getattr(defaults, field)}
    camera = {"nuisance": data.nuisance} if data.nuisance else {}
    return {**params, **camera, **data.task_params}


def open_dataset(config: ExperimentConfig, log: Callable[[str], None] = print) -> Dataset:
    """The configured dataset, or a small one generated (and cached) for the task when none is given."""
    data = config.data
    path = data.path
    if path is None:
        params = generated_task_params(config)
        task = registry().get("task", data.task).validate_params(params)
        check_lengths(config, task.train_length, task.test_length, f"a generated {data.task} dataset")
        log(f"no --data given: using a generated {data.task} dataset ({data.n_train} train sequences, cached)")
        path = ensure_dataset(data.task, data.n_train, data.n_valid, data.n_test, data.seed, data.cache_dir,
                              params=params)
    dataset = load_dataset(path, task=data.task)
    info = dataset.info
    mismatched = [f"{name} {mine} (data: {theirs})" for name, mine, theirs in (
        ("data.image_size", data.image_size, info.image_size),
        ("data.channels", data.channels, info.channels),
        ("data.n_objects", data.n_objects, info.n_objects),
    ) if mine != theirs and (name != "data.n_objects" or _object_state(config))]
    if mismatched:
        raise ConfigError(f"config does not match the dataset {path}: " + ", ".join(mismatched))
    empty = [name for name, split in (("train", dataset.train), ("valid", dataset.valid), ("test", dataset.test))
             if split.shape[0] == 0]
    if empty:
        raise DataError(f"dataset {path} has no {' and no '.join(empty)} sequences; training needs all three splits")
    takes = registry().get("physics", config.physics.name).n_controls
    if dataset.n_controls and dataset.n_controls != takes:
        raise ConfigError(f"physics '{config.physics.name}' takes {takes} control inputs but the dataset {path} "
                          f"was recorded under {dataset.n_controls}; choose an actuated physics that takes them")
    check_lengths(config, info.train_length, info.test_length, str(path))
    if abs(info.dt - data.dt) > 1e-9:
        log(f"note: data.dt is {data.dt} but the dataset was made with dt {info.dt}")
    return dataset


def check_lengths(config: ExperimentConfig, train_length: int, test_length: int, where: str) -> None:
    """Refuse frames the data does not have, before anything is generated or written: a training
    window longer than the training sequences, or a test rollout (``extrap_steps`` past the window)
    longer than the test sequences, which would otherwise be cut short under a record that claims it."""
    data = config.data
    needed = data.input_steps + data.pred_steps
    if train_length < needed:
        raise ConfigError(f"data.input_steps + data.pred_steps = {needed} but the training sequences of {where} "
                          f"have {train_length} frames")
    tested = needed + data.extrap_steps
    if test_length < tested:
        raise ConfigError(f"data.input_steps + data.pred_steps + data.extrap_steps = {tested} but the test sequences "
                          f"of {where} have {test_length} frames (data.extrap_steps at most {test_length - needed})")


def _object_state(config: ExperimentConfig) -> bool:
    return registry().get("physics", config.physics.name).state == "objects"
