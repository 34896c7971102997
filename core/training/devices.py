"""Devices by name, with one-line errors for ones this machine does not have."""
from __future__ import annotations

import torch

from pivf.core.kernel.errors import ConfigError

__all__ = ["describe_device", "resolve_device"]


def resolve_device(name: str, option: str = "training.device") -> torch.device:
    """A usable device for ``name`` ('auto', 'cpu', 'cuda', 'cuda:N'); ``option`` names it in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option}: unknown device '{name}'; allowed: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ConfigError(f"{option}: '{name}' requested but {count} CUDA device(s) are available; "
                              f"use 'cpu' or 'auto'")
    elif device.type != "cpu":
        raise ConfigError(f"{option}: unsupported device '{name}'; allowed: auto, cpu, cuda, cuda:N")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
