"""VPT of a trained pendulum model, split into sequences that swing and sequences that go over the top.

HGN's pendulum draws its initial states on phase-space circles of radius 1.3 to 2.3, so about a
third of them carry more energy than the pendulum upright at rest (H(π, 0), the separatrix) and
rotate, and about a sixth lie near it, where the period grows without bound. A single median over
all sequences hides which of these a model has learned. This simulates fresh sequences of the run's
task (its dataset's parameters, noise included), scores them as ``objective.evaluate`` does
(``prediction_time``, for a model of any objective: HGN's latent or PAIG's keypoints), and prints
the median forward and backward VPT of each group.

    python benchmarks/pendulum_vpt_split.py runs/<run> --sequences 300
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import pivf
from pivf.core.data.frames import as_float
from pivf.core.data.generate import make_task
from pivf.core.kernel.build import build_objective
from pivf.core.kernel.inference import inference
from pivf.core.kernel.vpt import prediction_time
from pivf.core.training.evaluate import restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--sequences", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    config, _, pipeline, dataset = restore(args.run, args.checkpoint, "cpu", lambda *_: None)
    task = make_task(dataset.info.task, dataset.info.params)
    inputs = build_objective(config).input_steps
    if task.physics != "pendulum":
        raise SystemExit(f"{args.run}: a run on a pendulum task is needed, not {task.name}")
    trajectory = task.simulate(args.sequences, task.length("test"), torch.Generator().manual_seed(args.seed))
    frames = as_float(task.render(trajectory))
    truth = pivf.physics("pendulum", **task.physics_params())
    q0, p0 = trajectory.q[:, 0], trajectory.p[:, 0]
    energy = truth.hamiltonian(q0, p0)
    separatrix = truth.hamiltonian(torch.full_like(q0, math.pi), torch.zeros_like(p0))
    with inference(pipeline):
        forward, backward = (torch.cat([prediction_time(pipeline, frames[i:i + args.batch_size], inputs, back)
                                        for i in range(0, args.sequences, args.batch_size)]).double()
                             for back in (False, True))
    groups = {"all": energy == energy, "swinging": energy < separatrix, "rotating": energy >= separatrix,
              "within 15% of the separatrix": (energy / separatrix - 1).abs() < 0.15}
    print(json.dumps({name: {"sequences": int(mask.sum()), "vpt": float(forward[mask].quantile(0.5)),
                             "vpt_backward": float(backward[mask].quantile(0.5))}
                      for name, mask in groups.items() if mask.any()}, indent=2))


if __name__ == "__main__":
    main()
