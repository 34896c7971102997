"""PAIG training throughput: sequences per second through full training steps (forward, backward,
clipping, optimiser) at a given batch size, data resident on the device, no host sync inside the
timed steps.

    python benchmarks/train_throughput.py --device cuda --batch-size 100 --task spring_color
"""
from __future__ import annotations

import argparse
import time

import torch

from pivf.core.build import build_pipeline
from pivf.core.config import resolve_config
from pivf.core.objectives import make_objective
from pivf.core.optim import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="spring_color")
    parser.add_argument("--integrator", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    flags = {"integrator.name": args.integrator} if args.integrator else {}
    config = resolve_config(task=args.task, flags=flags)
    device = torch.device(args.device)
    pipeline = build_pipeline(config).to(device)
    objective = make_objective(config)
    params = [p for p in pipeline.parameters() if p.requires_grad]
    optimizer = make_optimizer(config.training.optimizer, params, config.training.lr)
    size, length = config.data.image_size, objective.train_length
    frames = torch.rand(args.batch_size, length, 3, size, size, device=device)

    def step() -> None:
        losses = objective.losses(pipeline, frames)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_value_(params, config.training.grad_clip)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.task} {config.physics.name}+{config.integrator.name} batch {args.batch_size} on {name}: "
          f"{args.steps * args.batch_size / elapsed:.1f} sequences/s ({elapsed / args.steps * 1e3:.1f} ms/step)")


if __name__ == "__main__":
    main()
