"""The spring inside a learned pair potential: a quadratic fitted to φ(r) of a trained run.

A ``hamiltonian`` physics with ``potential: pairwise`` learns V = φ(|q0 − q1|) with no equation
given. Where the objects are joined by a spring, φ(r) should be ½·k·(r − 2l)² plus a constant
(PAIG's l is half the rest length). This evaluates the trained φ on a grid of distances, fits a
parabola by least squares and prints k and l beside the task's truth, with the largest departure
from the parabola as a share of φ's range over the grid.

    python benchmarks/pair_potential_fit.py runs/<run> --low 6 --high 18
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pivf.core.training.evaluate import restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--low", type=float, default=6.0, help="shortest distance on the grid")
    parser.add_argument("--high", type=float, default=18.0, help="longest distance on the grid")
    parser.add_argument("--checkpoint", default="best")
    args = parser.parse_args()

    _, _, pipeline, dataset = restore(args.run, args.checkpoint, "cpu", lambda *_: None)
    potential = getattr(pipeline.physics, "potential", None)
    if getattr(pipeline.physics.params, "potential", None) != "pairwise" or potential is None:
        raise SystemExit(f"{args.run}: a run of physics 'hamiltonian' with potential: pairwise is needed")
    distance = torch.linspace(args.low, args.high, 121, dtype=torch.float64)
    with torch.no_grad():
        energy = potential.phi(distance[:, None].float()).double()
    basis = torch.stack((distance**2, distance, torch.ones_like(distance)), dim=1)
    a, b, c = torch.linalg.lstsq(basis, energy[:, None]).solution[:, 0]
    departure = (basis @ torch.stack((a, b, c)) - energy).abs().max() / (energy.max() - energy.min())
    print(json.dumps({"run": str(args.run), "k": float(2 * a), "l": float(-b / (4 * a)),
                      "truth": dataset.info.ground_truth, "largest_departure": float(departure)}, indent=2))


if __name__ == "__main__":
    main()
