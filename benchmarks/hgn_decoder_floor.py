"""The floor under HGN's training step on a CPU: the decoder's forward and backward for one batch.

A step decodes the rolled-out state at the last input frame and at every predicted one, for each
sequence of the batch (16 × 30 frames at the pendulum preset), so however fast the rest of the
step becomes, it cannot take less than this. The script also counts the decoder's convolution
multiply-adds and prints the rate they run at, to show how close to the machine's arithmetic limit
the decoder already is.

    OMP_NUM_THREADS=2 python benchmarks/hgn_decoder_floor.py
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pivf.core.kernel.build import build_pipeline
from pivf.core.kernel.config import resolve_config


def convolution_macs(decoder: nn.Module, q: torch.Tensor) -> int:
    """Multiply-adds of every convolution in one forward pass."""
    total = 0

    def count(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * module.in_channels // module.groups * kh * kw

    hooks = [m.register_forward_hook(count) for m in decoder.modules()]
    with torch.no_grad():
        decoder(q)
    for hook in hooks:
        hook.remove()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pendulum")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args()
    config = resolve_config(task=args.task, overrides=args.set)
    torch.manual_seed(0)
    pipeline = build_pipeline(config)
    frames = args.batch_size * (config.data.pred_steps + 1)
    q = torch.randn(frames, *pipeline.physics.state_shape(), requires_grad=True)

    def step() -> None:
        pipeline.decoder(q).sum().backward()

    step()  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    gflop = 3 * 2 * convolution_macs(pipeline.decoder, q) / 1e9  # forward, and backward twice that
    print(f"decoder forward+backward of {frames} frames: {best:.3f} s (best of {args.repeats}); "
          f"{gflop:.0f} GFLOP of convolutions, {gflop / best:.0f} GFLOP/s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
