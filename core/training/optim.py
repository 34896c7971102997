"""Optimisers, including RMSprop with TF1's semantics, which PAIG's learning rates were tuned for."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["TFRMSprop", "make_optimizer"]


class TFRMSprop(Optimizer):
    """``tf.train.RMSPropOptimizer``: the accumulator starts at ONE (so early steps are small and
    SGD-like), ε sits inside the square root, decay 0.9, no momentum. PyTorch's RMSprop starts the
    accumulator at zero, which makes the first steps ~lr·sign(g) and destabilises PAIG's training."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float, decay: float = 0.9,
                 eps: float = 1e-10) -> None:
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, decay, eps = group["lr"], group["decay"], group["eps"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            squares = []
            for p in params:
                state = self.state[p]
                if "ms" not in state:
                    state["ms"] = torch.ones_like(p)
                squares.append(state["ms"])
            torch._foreach_mul_(squares, decay)
            torch._foreach_addcmul_(squares, grads, grads, value=1 - decay)
            denom = torch._foreach_add(squares, eps)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
        return loss


def make_optimizer(name: str, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float) -> Optimizer:
    """``params`` may be parameter groups (dicts), each with its own ``lr``; ``lr`` is the default."""
    if name == "rmsprop_tf":
        return TFRMSprop(params, lr=lr)
    # foreach: one call per operation for all parameters, not one per parameter (torch's default
    # on a GPU, not on a CPU); the same arithmetic, so the same weights
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, foreach=True)
    raise ValueError(f"unknown optimizer '{name}'")
