"""How fast datasets are made: end to end (simulate → render → compress to .npz, streamed as
``pivf data generate`` does it), then each stage on its own.

    python benchmarks/data_generation.py                       # 10,000 spring_color sequences of 12 frames
    python benchmarks/data_generation.py --task 3bp_color --n 1000 --role test
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from pivf.core.data.generate import chunk_generator, frames, make_task, single_threaded
from pivf.core.data.npz import NpzWriter


def _seconds(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="spring_color")
    parser.add_argument("--n", type=int, default=10_000, help="sequences")
    parser.add_argument("--role", choices=["train", "test"], default="train", help="train: short sequences, test: long")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    task = make_task(args.task)
    length, size = task.length(args.role), task.params.image_size
    shape = (args.n, length, size, size, task.channels)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.npz"

        def write(chunks) -> None:
            with NpzWriter(path) as writer:
                writer.write("train_x", shape, chunks)

        total, _ = _seconds(lambda: write(frames(task, args.n, length, seed=0, stream=0, device=args.device)))
        megabytes = path.stat().st_size / 1e6
        chunks = range(0, args.n, task.chunk_size)
        with single_threaded(args.device):  # as `frames` does
            simulate, trajectories = _seconds(lambda: [
                task.simulate(min(task.chunk_size, args.n - start), length, chunk_generator(1, 0, i), args.device)
                for i, start in enumerate(chunks)])
            render, videos = _seconds(lambda: [task.render(t[i:i + 128]).cpu().numpy()
                                               for t in trajectories for i in range(0, len(t), 128)])
        compress, _ = _seconds(lambda: write(videos))

    print(f"{args.task}: {args.n} sequences × {length} frames of {size}×{size}×{task.channels}, device {args.device}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, torch {torch.__version__}")
    print("| stage | seconds | sequences/s |")
    print("|---|---|---|")
    for stage, seconds in (("end to end (streamed)", total), ("simulate (RK4, rejection)", simulate),
                           ("render", render), ("compress + write", compress)):
        print(f"| {stage} | {seconds:.1f} | {args.n / seconds:,.0f} |")
    print(f"file size: {megabytes:.0f} MB")


if __name__ == "__main__":
    main()
