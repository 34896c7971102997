"""Where a learned constant's excess can come from, one source at a time, without pixels.

The physical constants are fitted by gradient descent to the task's own true trajectories: the
state at the last input frame is given, the learner's integrator (``euler``, 5 substeps, the PAIG
setting) rolls it over the predicted frames, and the squared distance to the true positions is
minimised. Each row changes one thing against the first (true positions, true velocity): the
velocity taken as the backward or the second-order difference of the input positions (what the
fast recipe's estimator starts from), positions drawn towards the image centre by a small factor
(what a soft-argmax over a spatial softmax does when the background keeps some weight), and the
integrator (Euler's substeps, or RK4). A row whose constants land where the learned ones do names the source.

    python benchmarks/bias_sources.py spring_color
    python benchmarks/bias_sources.py 3bp_color --sequences 200
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import Tensor

import pivf
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.velocity_fit import Backward, fit_velocity, largest_step_last_sign

#: (input positions (N, T_in, K, 2), true velocity at the last, dt, backward rollout) → velocity
Velocity = Callable[[Tensor, Tensor, float, Backward], Tensor]


def true_velocity(_inputs: Tensor, p_last: Tensor, _dt: float, _backward: Backward) -> Tensor:
    return p_last


def backward_difference(inputs: Tensor, _p_last: Tensor, dt: float, _backward: Backward) -> Tensor:
    return (inputs[:, -1] - inputs[:, -2]) / dt


def second_order_difference(inputs: Tensor, _p_last: Tensor, dt: float, _backward: Backward) -> Tensor:
    return (3 * inputs[:, -1] - 4 * inputs[:, -2] + inputs[:, -3]) / (2 * dt)


def through_the_physics(inputs: Tensor, p_last: Tensor, dt: float, backward: Backward) -> Tensor:
    """Two Gauss–Newton steps from the backward difference and from the largest step (core/kernel/velocity_fit.py)."""
    starts = [backward_difference(inputs, p_last, dt, backward), largest_step_last_sign(inputs, dt)]
    return fit_velocity(backward, inputs, starts, iterations=2)


def fit(task_name: str, physics_name: str, inputs: Tensor, p_last: Tensor, rule: Velocity, targets: Tensor,
        dt: float, integrator_name: str, substeps: int, iterations: int) -> dict[str, float]:
    """Constants of ``physics_name`` (started at the truth) that best carry the last input
    position, at the velocity ``rule`` gives under the current constants, through the predicted
    ``targets`` (N, S, K, 2)."""
    truth = pivf.task(task_name).true_parameters()
    physics = pivf.physics(physics_name).double()
    for name, value in physics.learned_parameters().items():
        getattr(physics, f"log_{name}").data.fill_(torch.log(torch.tensor(truth.get(name, value))).item())
    integrator = pivf.integrator(integrator_name, substeps=substeps)
    optimizer = torch.optim.Adam(physics.parameters(), lr=1e-2)
    t = torch.arange(targets.shape[1] + 1, dtype=torch.float64) * dt

    def backward(q: Tensor, p: Tensor, frames: int) -> Tensor:
        return integrator.rollout(physics, q, p, -torch.arange(frames + 1, dtype=torch.float64) * dt)[0][1:]

    for _ in range(iterations):
        velocity = rule(inputs, p_last, dt, backward)
        q, _ = integrator.rollout(physics, inputs[:, -1], velocity, t)
        loss = (q[1:].transpose(0, 1) - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return physics.learned_parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="a PAIG task with a known-equation physics, e.g. spring_color, 3bp_color")
    parser.add_argument("--sequences", type=int, default=400)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--shrink", type=float, default=0.99, help="factor towards the centre in the shrink row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = resolve_config(task=args.task)
    data, physics_name = config.data, config.physics.name
    task = pivf.task(args.task)
    trajectory = task.simulate(args.sequences, data.input_steps + data.pred_steps,
                               torch.Generator().manual_seed(args.seed))
    positions, p = trajectory.positions.double(), trajectory.p.double()
    last = data.input_steps - 1
    centre = data.image_size / 2
    shrunk = centre + args.shrink * (positions - centre)
    rows: list[tuple[str, Tensor, Velocity, str, int]] = [
        ("true positions, true velocity", positions, true_velocity, "euler", 5),
        ("true positions, backward difference", positions, backward_difference, "euler", 5),
        ("true positions, second-order difference", positions, second_order_difference, "euler", 5),
        ("true positions, velocity through the physics", positions, through_the_physics, "euler", 5),
        (f"positions ×{args.shrink} towards the centre, true velocity", shrunk, true_velocity, "euler", 5),
        ("true positions, true velocity, euler 1 substep", positions, true_velocity, "euler", 1),
        ("true positions, true velocity, euler 20 substeps", positions, true_velocity, "euler", 20),
        ("true positions, true velocity, rk4 5 substeps", positions, true_velocity, "rk4", 5),
        ("true positions, backward difference, rk4 5 substeps", positions, backward_difference, "rk4", 5),
        ("true positions, velocity through the physics, euler 20 "
         "substeps", positions, through_the_physics, "euler", 20),
        ("true positions, velocity through the physics, rk4 5 substeps", positions, through_the_physics, "rk4", 5),
    ]
    truth = task.true_parameters()
    print(f"{args.task}: {physics_name} fitted to {args.sequences} true trajectories ({data.pred_steps} predicted "
          f"frames, dt {data.dt}), started at the truth {truth}")
    print("| source | " + " | ".join(f"{name} (error)" for name in pivf.physics(physics_name).learned_parameters())
          + " |")
    for label, seen, rule, integrator_name, substeps in rows:
        p_last = p[:, last] * (args.shrink if seen is shrunk else 1.0)
        learned = fit(args.task, physics_name, seen[:, : data.input_steps], p_last, rule, seen[:, data.input_steps:],
                      data.dt, integrator_name, substeps, args.iterations)
        cells = [f"{value:.3f} ({100 * (value / truth[name] - 1):+.1f} %)" for name, value in learned.items()]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
