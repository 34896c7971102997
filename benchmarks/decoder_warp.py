"""The spatial transformer's warp, separable matrix products against ``affine_grid`` + ``grid_sample``,
timed side by side in one process: the PAIG decoder's forward and backward for one training step's
states (batch × frames images of the task's objects), alternating the two, best of ``--repeats``.

    OMP_NUM_THREADS=2 python benchmarks/decoder_warp.py --device cpu
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor

from pivf.core.kernel.build import build_pipeline
from pivf.core.kernel.config import resolve_config
from pivf.testing import grid_sampled_warp


def timed(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="spring_color")
    parser.add_argument("--images", type=int, default=1000, help="states decoded per step (batch 100 × 10 frames)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    decoder = build_pipeline(resolve_config(task=args.task)).decoder.to(device)
    size, n = decoder.params.image_size, decoder.params.n_objects
    q = (torch.rand(args.images, n, 2, device=device) * size).requires_grad_(True)

    def step(warp: Callable[[Tensor], Tensor]) -> Callable[[], None]:
        return lambda: warp(q).square().sum().backward()

    ways = {"separable": step(decoder.warp), "grid_sample": step(lambda x: grid_sampled_warp(decoder, x))}
    best = {name: float("inf") for name in ways}
    for _ in range(args.repeats):
        for name, run in ways.items():
            best[name] = min(best[name], timed(run, device))
    for name, seconds in best.items():
        print(f"{name:>12}: {seconds * 1e3:.1f} ms forward+backward for {args.images} images")
    print(f"separable / grid_sample speed: {best['grid_sample'] / best['separable']:.2f}×")


if __name__ == "__main__":
    main()
