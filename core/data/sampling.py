"""Random draws for initial states, all from one CPU ``torch.Generator`` in float64.

Drawing on the CPU whatever the simulation device makes a seed give the same initial states on
every machine.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["normal", "signs", "uniform", "unit_vectors"]


def uniform(generator: torch.Generator, size: tuple[int, ...], low: float | Tensor, high: float | Tensor) -> Tensor:
    """U(low, high) of shape ``size``."""
    return low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)


def unit_vectors(generator: torch.Generator, size: tuple[int, ...]) -> Tensor:
    """Directions uniform in angle, shape ``(*size, 2)``."""
    angle = uniform(generator, size, 0.0, 2 * math.pi)
    return torch.stack((angle.cos(), angle.sin()), dim=-1)


def signs(generator: torch.Generator, size: tuple[int, ...]) -> Tensor:
    """±1 with equal probability."""
    return torch.randint(0, 2, size, generator=generator).to(torch.float64) * 2 - 1


def normal(generator: torch.Generator, size: tuple[int, ...], std: float) -> Tensor:
    return std * torch.randn(size, generator=generator, dtype=torch.float64)
