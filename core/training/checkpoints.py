"""Checkpoints: where they live, what they may hold, and loading them without running their code.

A checkpoint holds only tensors, plain containers (dict, list, tuple) and plain values (int, float,
bool, str, None): the model's and optimiser's state dicts, the objective's state, RNG states as
uint8 tensors, counters. That is exactly what ``torch.load(weights_only=True)`` rebuilds, so a
checkpoint from someone else can be evaluated, rolled out or resumed without trusting its author:
a file that holds anything else (a pickled object, which would run code when unpickled) is refused
with one line, and nothing in it runs. So is a file that cannot be what pivf wrote: bytes that are not
a checkpoint (damaged), counters of the wrong type, weights that are not finite (pivf saves only
finite ones; evaluating them would report NaN as a result).
"""
from __future__ import annotations

import math
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pivf.core.kernel.errors import CheckpointError

__all__ = ["check_shuffle_order", "checkpoint_path", "load_checkpoint", "restoring"]

#: keys every pivf checkpoint has; the rest are read where they are used
REQUIRED_KEYS = ("model", "epoch", "step")
#: counters a checkpoint may hold, by type: whole numbers are counts (at least 0), the rest real numbers
COUNTERS = {"epoch": int, "step": int, "epoch_step": int, "failures": int, "best": float, "lr_scale": float,
            "wall": float}
#: pickle opcodes that name a Python object to build: what makes unpickling a file run code
IMPORTING_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


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
        with warnings.catch_warnings():  # torch's note on a bare pickle's protocol: the refusal says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or _pickle_building_objects(path):
            raise CheckpointError(f"{path}: refused, it holds objects other than tensors and plain values, which "
                                  "could run code when loaded (see 'Sharing checkpoints' in the README)") from None
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (not a file torch.save wrote)") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - whatever torch's reader trips on, the file is damaged
        reason = " ".join(str(exc).split()[:12]) or type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})") from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a pivf checkpoint (a dict with {', '.join(REQUIRED_KEYS)} expected)")
    _check_contents(state, path)
    return state


def _pickle_building_objects(path: Path) -> bool:
    """Whether ``path`` is one whole pickle (not torch's zip) that builds Python objects, read opcode by
    opcode without running any: a refused pickle, where anything else torch could not read is damaged."""
    if zipfile.is_zipfile(path):
        return False
    try:
        with open(path, "rb") as handle:
            names = {opcode.name for opcode, _, _ in pickletools.genops(handle)}
            whole = handle.read(1) == b""
    except Exception:  # noqa: BLE001 - not a pickle stream at all
        return False
    return whole and bool(names & IMPORTING_OPCODES)


def _check_contents(state: dict[str, Any], path: Path) -> None:
    """Counters of the right type, a shuffle order that is a list of positions, finite weights."""
    for key, kind in COUNTERS.items():
        value = state.get(key, 0)
        number = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
        if not number or (isinstance(value, float) and math.isnan(value)) or (kind is int and value < 0):
            expected = "a whole number ≥ 0" if kind is int else "a number"
            raise CheckpointError(f"{path}: damaged checkpoint, '{key}' is {value!r:.40}; {expected} expected")
    order = state.get("order")
    if order is not None and not (isinstance(order, Tensor) and order.dim() == 1 and order.dtype == torch.int64):
        raise CheckpointError(f"{path}: damaged checkpoint, 'order' is not a list of sequence positions")
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(value, Tensor) for value in model.values()):
        raise CheckpointError(f"{path}: damaged checkpoint, 'model' is not a dict of tensors")
    bad = next((name for name, value in model.items() if value.is_floating_point() and not torch.isfinite(value).all()),
               None)
    if bad is not None:
        raise CheckpointError(f"{path}: the checkpoint holds non-finite weights ({bad}); pivf saves only finite "
                              "ones, so this file was damaged or edited")


def check_shuffle_order(order: Tensor | None, n_train: int, path: Path) -> None:
    """A resumed epoch's shuffle order must be a permutation of the run's training sequences."""
    if order is not None and not torch.equal(torch.sort(order.cpu()).values, torch.arange(n_train)):
        raise CheckpointError(f"{path}: damaged checkpoint, its shuffle order is not a permutation of the run's "
                              f"{n_train} training sequences")


@contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Around loading a checkpoint's state into a model, optimiser or objective: a checkpoint of
    another architecture (another run's, an edited config.yaml) is a one-line error."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: does not fit the run's config.yaml ({first[:200]})") from None
