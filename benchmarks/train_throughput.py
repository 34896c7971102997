"""Training throughput of any task preset (PAIG or HGN), in sequences per second, on one device.

Runs full training steps as the training loop does (forward, objective, backward, element-wise
clipping where the preset clips, the preset's optimiser) on a fixed batch held on the device.
Warm-up steps come first (allocator, cuDNN autotuning, compilation); the clock runs only over the
timed steps, with the device synchronised just before and after them.

Besides sequences per second it prints the peak memory (allocated on a GPU, resident on a CPU) and
sequences per second of the process's CPU time: on a CPU shared with other jobs, with one thread
(``OMP_NUM_THREADS=1``), the figure that waiting for a core does not change.

``--compile`` compiles the encoder and decoder (``training.compile``; a learned Hamiltonian's double
backward cannot be compiled); ``--bf16`` runs the vision networks' convolutions under bfloat16
autocast while positions and physics stay float32 (``training.bf16``).

    python benchmarks/train_throughput.py --device cuda --task spring_color        # PAIG, batch 100
    python benchmarks/train_throughput.py --device cuda --task pendulum            # HGN, batch 16
    python benchmarks/train_throughput.py --task pendulum --set integrator.name=yoshida
"""
from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.optim import Optimizer

from pivf.core.data.frames import as_float
from pivf.core.kernel.build import build_objective, build_pipeline
from pivf.core.kernel.config import ExperimentConfig, resolve_config
from pivf.core.kernel.objective import Objective
from pivf.core.kernel.pipeline import Pipeline
from pivf.core.training.devices import resolve_device
from pivf.core.training.optim import make_optimizer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose a training step: task, recipe and overrides, device, batch, precision."""
    parser.add_argument("--task", default="spring_color", help="a task preset (PAIG or HGN)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        choices=("default", "reduce-overhead", "max-autotune"),
                        help="torch.compile the encoder and decoder, in MODE (default: default)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the vision convolutions (training.bf16)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override, as for `pivf train --set`")


@dataclass
class TrainingStep:
    """One training step as the training loop takes it, on a fixed batch held on the device, in its
    three phases (``forward``, ``backward``, ``update``) so that a profiler can tell them apart."""

    config: ExperimentConfig
    pipeline: Pipeline
    objective: Objective
    optimizer: Optimizer
    params: list[Tensor]
    batch: Tensor
    device: torch.device

    def forward(self) -> Tensor:
        return self.objective.losses(self.pipeline, as_float(self.batch))["loss"]

    def backward(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def update(self) -> None:
        if self.config.training.grad_clip > 0:
            torch.nn.utils.clip_grad_value_(self.params, self.config.training.grad_clip)
        self.optimizer.step()

    def __call__(self) -> Tensor:
        loss = self.forward()
        self.backward(loss)
        self.update()
        return loss.detach()


def build_step(args: argparse.Namespace) -> TrainingStep:
    """The step the options of ``add_step_arguments`` choose, seeded, with a random uint8 batch."""
    config = resolve_config(task=args.task, overrides=args.set)
    tcfg = config.training
    device = resolve_device(args.device, option="--device")
    torch.manual_seed(0)
    pipeline = build_pipeline(config).to(device)
    pipeline.bf16 = args.bf16
    if args.compile:
        pipeline.compile_vision(args.compile)
    objective = build_objective(config)
    params = [p for p in pipeline.parameters() if p.requires_grad]
    optimizer = make_optimizer(tcfg.optimizer, params, tcfg.lr)
    size, channels = config.data.image_size, config.data.channels
    batch = torch.randint(0, 256, (args.batch_size or tcfg.batch_size, objective.train_length, size, size, channels),
                          dtype=torch.uint8, device=device)
    return TrainingStep(config, pipeline, objective, optimizer, params, batch, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    args = parser.parse_args()

    step = build_step(args)
    config, device, batch_size = step.config, step.device, step.batch.shape[0]
    for _ in range(args.warmup):
        step()
    synchronize(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = step()
    synchronize(device)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if not torch.isfinite(loss):
        raise SystemExit("the loss is not finite; the figure would be meaningless")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"train_throughput task={args.task} device={name} physics={config.physics.name} "
          f"integrator={config.integrator.name} batch={batch_size} frames={step.objective.train_length} "
          f"compile={args.compile or False} bf16={args.bf16}: {args.steps * batch_size / elapsed:.2f} sequences/s "
          f"({args.steps} steps in {elapsed:.3f} s; peak memory {peak_memory_mib(device):.0f} MiB); "
          f"{args.steps * batch_size / cpu:.2f} sequences per CPU-second")


def peak_memory_mib(device: torch.device) -> float:
    """The device's peak allocated memory; on a CPU the process's peak resident size (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


if __name__ == "__main__":
    main()
