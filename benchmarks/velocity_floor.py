"""The prediction loss a perfect encoder and decoder would still make with a given velocity rule.

Positions come from the task's own ground truth, the rollout from the task's physics through the
learner's integrator (``euler``, 5 substeps, the PAIG setting), the frames from the task's own
renderer; only the velocity at the last input frame is estimated, from the true positions of the
input frames, or fitted through the task's physics (core/kernel/velocity_fit.py). The pred loss of the
true velocity is the floor of the integrator; the others show what a velocity rule alone costs (on
bouncing balls: a bounce between the last input frames).

    python benchmarks/velocity_floor.py bouncing_balls
    python benchmarks/velocity_floor.py spring_color --sequences 200
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import Tensor

import pivf
from pivf.core.data.task import Trajectory
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.losses import frame_sse
from pivf.core.kernel.velocity_fit import fit_velocity, largest_step_last_sign

Rule = Callable[[Tensor, float], Tensor]


def backward_difference(positions: Tensor, dt: float) -> Tensor:
    return (positions[:, -1] - positions[:, -2]) / dt


def second_order_difference(positions: Tensor, dt: float) -> Tensor:
    """(3q₋₀ − 4q₋₁ + q₋₂) / 2dt: exact for constant acceleration."""
    return (3 * positions[:, -1] - 4 * positions[:, -2] + positions[:, -3]) / (2 * dt)


RULES: dict[str, Rule] = {"backward difference": backward_difference,
                          "second-order difference": second_order_difference,
                          "largest step, last sign": largest_step_last_sign}


def pred_loss(task, physics, q_last: Tensor, p_last: Tensor, frames: Tensor, dt: float, steps: int) -> float:
    t = torch.arange(steps + 1, dtype=torch.float64) * dt
    q, _ = pivf.integrator("euler", substeps=5).rollout(physics, q_last, p_last, t)
    positions = q.transpose(0, 1)[:, 1:]
    drawn = task.render(Trajectory(positions, positions, positions)).float() / 255
    return float(frame_sse(drawn, frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="a task whose physics state is object positions, e.g. bouncing_balls")
    parser.add_argument("--sequences", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = resolve_config(task=args.task).data
    task = pivf.task(args.task)
    length = data.input_steps + data.pred_steps
    trajectory = task.simulate(args.sequences, length, torch.Generator().manual_seed(args.seed))
    frames = task.render(trajectory).float() / 255
    target = frames[:, data.input_steps:]
    physics = task.physics_system()
    inputs = trajectory.positions[:, : data.input_steps].double()
    last = data.input_steps - 1
    print(f"{args.task}: pred loss over {data.pred_steps} frames of {args.sequences} sequences, true positions "
          f"at the last input frame, velocity by rule (euler, 5 substeps)")
    rows = {"true velocity": trajectory.p[:, last].double(),
            **{name: rule(inputs, data.dt) for name, rule in RULES.items()}}
    integrator = pivf.integrator("euler", substeps=5)

    def backward(q: Tensor, p: Tensor, frames: int) -> Tensor:
        return integrator.rollout(physics, q, p, -torch.arange(frames + 1, dtype=torch.float64) * data.dt)[0][1:]

    starts = [rows["backward difference"], rows["largest step, last sign"]]
    rows["through the physics"] = fit_velocity(backward, inputs, starts, iterations=3)
    for name, velocity in rows.items():
        loss = pred_loss(task, physics, inputs[:, -1], velocity, target, data.dt, data.pred_steps)
        print(f"  {name:<26} {loss:.2f}")


if __name__ == "__main__":
    main()
