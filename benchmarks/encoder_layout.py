"""Time per frame of the PAIG encoder's localisation (U-Net forward and backward) for batches that
are whole stored sequences or slices of longer ones, as training and evaluation cut them.

The best of ``--repeats`` timings is kept, so a shared machine's load spikes drop out.

    OMP_NUM_THREADS=2 python benchmarks/encoder_layout.py
"""
from __future__ import annotations

import argparse
import time

import torch

from pivf.core.build import build_pipeline
from pivf.core.config import resolve_config
from pivf.core.data.dataset import as_float

#: (frames stored per sequence, frames the batch uses)
SHAPES = ((10, 10), (12, 10), (12, 12), (30, 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="spring_color")
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = build_pipeline(resolve_config(task=args.task)).encoder
    size = encoder.params.image_size
    for stored, used in SHAPES:
        frames = as_float(torch.randint(0, 256, (args.sequences, stored, size, size, 3), dtype=torch.uint8))[:, :used]
        encoder.locate(frames).sum().backward()  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            encoder.locate(frames).sum().backward()
            best = min(best, time.perf_counter() - start)
        print(f"{used:>2} of {stored:>2} stored frames: {best / (args.sequences * used) * 1e3:.3f} ms per frame")


if __name__ == "__main__":
    main()
