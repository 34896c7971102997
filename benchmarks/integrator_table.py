"""The integrator comparison of a ``pivf compare`` sweep, as one table: for each integrator and seed
the test VPT forward and backward (past the training window: the test sequences are longer), the
drift of the learned energy along rollouts ten times the training window, and the time per
training step; then each integrator's mean and standard deviation over the seeds.

The drift is max_t |H(t) − H(0)| over the mean kinetic energy along the rollout (H − H(q, 0)),
the median over test sequences: a learned H has no natural zero, its kinetic part has.

    python benchmarks/integrator_table.py sweeps/two_body --sequences 20
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from pivf.core.data.frames import as_float
from pivf.core.kernel.build import build_objective
from pivf.core.kernel.inference import inference
from pivf.core.training.evaluate import restore

#: rollouts this many training windows long
WINDOWS = 10
COLUMNS = ("vpt", "vpt_backward", "drift", "s_per_step")


def energy_drift(run: Path, sequences: int) -> float:
    """The median relative drift of the learned energy along 10-window rollouts of test sequences."""
    config, _, pipeline, dataset = restore(run, "best", "cpu", lambda *_: None)
    objective = build_objective(config)
    frames = as_float(dataset.test[:sequences])
    with inference(pipeline):
        encoded = pipeline.encode(frames[:, :objective.input_steps])
        q, p = pipeline.rollout(encoded.q0, encoded.p0, WINDOWS * objective.train_length)
        energy = pipeline.physics.energy(q, p)
        kinetic = energy - pipeline.physics.energy(q, torch.zeros_like(p))
    drift = (energy - energy[0]).abs().amax(0) / kinetic.mean(0).abs().clamp_min(1e-12)
    return float(drift.median())


def run_row(run: Path, sequences: int) -> dict[str, float]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {"vpt": metrics["eval"]["vpt"], "vpt_backward": metrics["eval"]["vpt_backward"],
            "drift": energy_drift(run, sequences),
            "s_per_step": metrics["train"]["wall_s"] / max(metrics["train"]["steps"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--sequences", type=int, default=20, help="test sequences rolled out for the drift")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {}
    print("| integrator | seed | VPT forward | VPT backward | energy drift | s per step |")
    print("|---|---:|---:|---:|---:|---:|")
    for metrics_file in sorted(args.sweep.glob("*/*/seed*/metrics.json")):
        run = metrics_file.parent
        integrator = run.parent.name
        row = run_row(run, args.sequences)
        rows.setdefault(integrator, []).append(row)
        print(f"| {integrator} | {run.name.removeprefix('seed')} | {row['vpt']:g} | {row['vpt_backward']:g} | "
              f"{row['drift']:.2g} | {row['s_per_step']:.2f} |")
    print("\n| integrator | seeds | " + " | ".join(f"{c} mean ± sd" for c in COLUMNS) + " |\n|---|---:|"
          + "---|" * len(COLUMNS))
    for integrator, found in rows.items():
        cells = []
        for column in COLUMNS:
            values = [row[column] for row in found]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3g} ± {spread:.2g}")
        print(f"| {integrator} | {len(found)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
