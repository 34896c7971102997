"""The velocity that the physics itself says the input positions had.

A finite difference of the input positions is the velocity half a frame earlier, so the physics'
constants absorb its error (a spring's k learned 6 % high from backward differences alone), and
across a bounce it points the wrong way. Here the velocity at the last input frame is the one whose
*backward* rollout through the physics and the integrator passes through the positions of the other
input frames, in the least-squares sense: a few damped Gauss–Newton steps from the encoder's own
estimate, the Jacobian taken by central differences on one batched rollout (the state has a handful
of coordinates). Every operation is differentiable, so the prediction loss reaches the encoder's
positions and the physical constants through the fitted velocity too.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Backward", "fit_velocity", "largest_step_last_sign"]

#: backward(q, p, frames) → positions (frames, B, *state) at the frames before (q, p)'s, latest first
Backward = Callable[[Tensor, Tensor, int], Tensor]
#: Levenberg damping relative to the mean diagonal of JᵀJ: keeps a step sane on a bad estimate
DAMPING = 1e-3
#: central-difference step, relative to the velocities' scale
EPSILON = 1e-3


def largest_step_last_sign(positions: Tensor, dt: float) -> Tensor:
    """Per coordinate the largest |Δq| of the input intervals, signed as the last Δq: exact in free
    flight, and across an elastic bounce, whose interval is the one that looks slow."""
    steps = (positions[:, 1:] - positions[:, :-1]) / dt
    return steps.abs().amax(1) * torch.sign(steps[:, -1])


def fit_velocity(backward: Backward, positions: Tensor, starts: list[Tensor], iterations: int) -> Tensor:
    """``positions`` (B, T_in, *state) encoded at the input frames, ``starts`` first estimates of the
    velocity at the last one (each (B, *state)) → per sequence the refined start whose backward
    rollout misses the input positions least (B, *state). Several starts, because a bounce makes the
    misfit piecewise: Gauss–Newton from the wrong side of a bounce settles on the wrong piece."""
    count, b = len(starts), positions.shape[0]
    shape = starts[0].shape[1:]
    n = starts[0][0].numel()
    q_last = positions[:, -1].repeat(count, *[1] * len(shape))
    targets = positions[:, :-1].flip(1).transpose(0, 1).reshape(-1, b, n).repeat(1, count, 1)  # (T', S·B, n)
    eye = torch.eye(n, dtype=positions.dtype, device=positions.device)
    flat = torch.cat(starts).reshape(count * b, n)

    def misfit(velocity: Tensor, probes: Tensor) -> Tensor:
        """Residuals (T', 1 + probes, S·B, n) of ``velocity`` and of each probe step added to it."""
        trial = torch.cat([velocity[None], velocity[None] + probes[:, None]]).reshape(-1, *shape)
        rolled = backward(q_last.repeat(1 + probes.shape[0], *[1] * len(shape)), trial, targets.shape[0])
        return rolled.reshape(targets.shape[0], 1 + probes.shape[0], count * b, n) - targets[:, None]

    for _ in range(iterations):
        step = EPSILON * flat.detach().abs().mean().clamp_min(1.0)
        rolled = misfit(flat, torch.cat([eye, -eye]) * step)
        residual = rolled[:, 0].transpose(0, 1).reshape(count * b, -1)  # (S·B, T'·n)
        jacobian = (rolled[:, 1:1 + n] - rolled[:, 1 + n:]) / (2 * step)  # (T', n probes, S·B, n)
        jacobian = jacobian.permute(2, 0, 3, 1).reshape(count * b, -1, n)
        normal = jacobian.transpose(1, 2) @ jacobian
        damping = DAMPING * normal.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-12)[:, None, None] * eye
        flat = flat - torch.linalg.solve(normal + damping, jacobian.transpose(1, 2) @ residual[..., None]).squeeze(-1)
    errors = misfit(flat, eye[:0])[:, 0].pow(2).sum((0, 2)).reshape(count, b)
    best = errors.argmin(0)  # (B,)
    return flat.reshape(count, b, n)[best, torch.arange(b, device=best.device)].reshape(b, *shape)
