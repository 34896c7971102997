"""Time per frame of the PAIG encoder's localisation (U-Net forward and backward) for batches that
are whole stored sequences or slices of longer ones, as training and evaluation cut them.

Shapes are timed in turn, round after round, and each keeps its best time, so a shared machine's
load spikes drop out and cannot land on one shape only.

    OMP_NUM_THREADS=2 python benchmarks/encoder_layout.py
    OMP_NUM_THREADS=2 python benchmarks/encoder_layout.py --set encoder.cpu_batch=100000   # one call per batch
"""
from __future__ import annotations

import argparse
import time

import torch

from pivf.core.data.frames import as_float
from pivf.core.kernel.build import build_pipeline
from pivf.core.kernel.config import resolve_config

#: (frames stored per sequence, frames the batch uses)
SHAPES = ((10, 10), (12, 10), (12, 12), (30, 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="spring_color")
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = build_pipeline(resolve_config(task=args.task, overrides=args.set)).encoder
    size = encoder.params.image_size
    batches = {(stored, used): as_float(torch.randint(0, 256, (args.sequences, stored, size, size, 3),
                                                      dtype=torch.uint8))[:, :used] for stored, used in SHAPES}
    best = dict.fromkeys(batches, float("inf"))
    for repeat in range(args.repeats + 1):
        for shape, frames in batches.items():
            start = time.perf_counter()
            encoder.locate(frames).sum().backward()
            if repeat:  # the first round warms up
                best[shape] = min(best[shape], (time.perf_counter() - start) / (args.sequences * shape[1]))
    for (stored, used), seconds in best.items():
        print(f"{used:>2} of {stored:>2} stored frames: {seconds * 1e3:.3f} ms per frame, "
              f"{seconds / best[SHAPES[0]]:.2f}× the first")


if __name__ == "__main__":
    main()
