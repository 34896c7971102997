"""Small network pieces shared by vision plugins."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["full_precision", "glorot_init", "mlp"]


def mlp(sizes: Sequence[int], activation: type[nn.Module], final_activation: bool = False) -> nn.Sequential:
    """Dense layers ``sizes[0] → … → sizes[-1]`` with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


def glorot_init(module: nn.Module) -> nn.Module:
    """TF1's defaults (Glorot-uniform kernels, zero biases), which PAIG's hyperparameters were tuned for."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 if autocast left it in a 16-bit type; float32 and float64 pass unchanged."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
