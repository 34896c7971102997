"""Checkpoints: where they live, what they may hold, and loading them without running their code.

A checkpoint holds only tensors, plain containers (dict, list, tuple) and plain values (int, float,
bool, str, None): the model's and optimiser's state dicts, the objective's state, RNG states as
uint8 tensors, counters. That is exactly what ``torch.load(weights_only=True)`` rebuilds, so a
checkpoint from someone else can be evaluated, rolled out or resumed without trusting its author:
a file that holds anything else (a pickled object, which would run code when unpickled) is refused
with one line, and nothing in it runs.
"""
from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pivf.core.errors import CheckpointError

#: keys every pivf checkpoint has; the rest are read where they are used
REQUIRED_KEYS = ("model", "epoch", "step")


def checkpoint_path(run_dir: Path, name: str) -> Path:
    """``best`` or ``last`` of a run directory."""
    return Path(run_dir) / "checkpoints" / f"{name}.pt"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Tensors and plain values only, on the CPU (RNG states must be CPU tensors; ``load_state_dict``
    moves the rest where it belongs). Every defect is a ``CheckpointError`` of one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused, it holds objects other than tensors and plain values, which "
                              "could run code when loaded (see 'Sharing checkpoints' in the README)") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - whatever torch's reader trips on, the file is damaged
        reason = " ".join(str(exc).split()[:12]) or type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a pivf checkpoint (a dict with {', '.join(REQUIRED_KEYS)} expected)")
    return state


@contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Around loading a checkpoint's state into a model, optimiser or objective: a checkpoint of
    another architecture (another run's, an edited config.yaml) is a one-line error."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: does not fit the run's config.yaml ({first[:200]})") from None
