"""The valid prediction time a perfect model reaches on a task's noisy frames.

HGN's environments jitter every drawn position with Gaussian observation noise (mass_spring and
pendulum: σ = 0.1 world units, 0.8 px). A model can at best predict the clean motion, and VPT ends
at the first frame whose error against the *noisy* frame passes 0.025 of that frame's mean square.
This renders each test sequence twice from one simulation, with its noise and without, and scores
the clean video against the noisy one exactly as ``objective.evaluate`` scores a model: the median
over sequences, forward from the last input frame and backward from the first frame the encoder
would see at the end, and prints the pixel MSE it makes in the papers' units. These are the
ceiling and the floor for any learned model on that data.

    python benchmarks/vpt_ceiling.py mass_spring
    python benchmarks/vpt_ceiling.py pendulum --sequences 500
"""
from __future__ import annotations

import argparse

import torch

import pivf
from pivf.api import valid_prediction_time
from pivf.core.data.task import Trajectory
from pivf.plugins.objectives.hgn import MSE_SCALE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="an HGN task, e.g. mass_spring or pendulum")
    parser.add_argument("--sequences", type=int, default=200)
    parser.add_argument("--input-steps", type=int, default=5, help="frames the encoder sees")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    task = pivf.task(args.task)
    length = task.length("test")
    trajectory = task.simulate(args.sequences, length, torch.Generator().manual_seed(args.seed))
    clean_task = pivf.task(args.task, noise_std=0.0)
    clean = Trajectory(trajectory.q, trajectory.p, clean_task.observe(trajectory.q, trajectory.p, torch.Generator()))
    noisy_frames, clean_frames = (task.render(t).float().div(255).permute(0, 1, 4, 2, 3) for t in (trajectory, clean))

    unseen = length - args.input_steps
    forward = valid_prediction_time(clean_frames[:, args.input_steps:], noisy_frames[:, args.input_steps:])
    backward = valid_prediction_time(clean_frames[:, :unseen].flip(1), noisy_frames[:, :unseen].flip(1))
    mse = (clean_frames - noisy_frames)[:, args.input_steps - 1:].pow(2).mean() * MSE_SCALE
    print(f"{args.task}: a perfect model's pixel MSE ×1e4 from the last input frame on: {mse:.2f}")
    for name, vpt in (("forward", forward), ("backward", backward)):
        print(f"{args.task}: a perfect model's VPT {name}: median {vpt.double().quantile(0.5):.1f} of {unseen} frames "
              f"(mean {vpt.double().mean():.1f}; all {unseen} frames on {(vpt == unseen).double().mean():.0%} of "
              "sequences)")


if __name__ == "__main__":
    main()
