"""SyMetric of a finished run (see core/apps/symetric.py): how well the learned phase space maps
onto the true one, and whether that map is symplectic, on fresh sequences of the run's task.

    python benchmarks/symetric.py runs/<run> --sequences 10 --steps 60
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pivf.core.apps.symetric import pipeline_symetric
from pivf.core.data.generate import make_task
from pivf.core.kernel.build import build_objective
from pivf.core.training.evaluate import restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--sequences", type=int, default=10, help="fresh trajectories (DeepMind: 10)")
    parser.add_argument("--steps", type=int, default=60, help="frames rolled out per trajectory (DeepMind: 60)")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config, _, pipeline, dataset = restore(args.run, args.checkpoint, args.device, print)
    task = make_task(dataset.info.task, dataset.info.params)
    score = pipeline_symetric(pipeline, task, build_objective(config).input_steps, args.sequences, args.steps)
    print(json.dumps({"run": str(args.run), "task": task.name, **score.as_dict()}, indent=2))


if __name__ == "__main__":
    main()
