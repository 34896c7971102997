"""A training step against the hardware's floor: what fraction of the machine each part of the step uses.

Takes the step of any config as ``train_throughput.py`` builds it (same options), then:

- counts its floating-point operations with ``torch.utils.flop_counter`` (the whole step under
  ``FlopCounterMode``, and per part with the same formulas);
- runs ``--passes`` steps with every aten operator timed and counted, each charged to the part it belongs to:
  ``encoder``, ``rollout`` (the integrator and physics, the velocity refinement included),
  ``decoder``, ``loss`` (the objective and the glue between the parts) and ``optimiser`` (clipping
  and the update). A backward operator belongs to the part whose forward created its autograd node;
- replays every operator that does arithmetic (convolutions forward and backward, matrix products)
  with the step's own shapes, layouts and dtypes on fresh tensors, best of ``--repeats``: the
  machine's attainable time for the step's kernels (the *kernel floor*);
- measures the machine's peak rate as the best large square matrix product (the *peak floor* is the
  step's FLOPs at that rate);
- times the plain step (median of ``--steps``); what the timed operators leave of it is
  ``framework`` (Python, dispatch, autograd bookkeeping).

Operator counts are the calls that reach aten's kernels (after composite operators decompose): on a
GPU each is at least one kernel launch.

    python benchmarks/floor.py --task spring_color --set training.recipe=paper --batch-size 100
    python benchmarks/floor.py --task pendulum --set training.recipe=fast --json floor.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode
from train_throughput import TrainingStep, add_step_arguments, build_step, synchronize

PARTS = ("encoder", "rollout", "decoder", "loss", "optimiser")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
FLOP_FORMULAS = FlopCounterMode().flop_registry
DOMINANT = 8  # kernels in the printed table (the JSON has all)


@dataclass
class PartFigures:
    flops: int = 0
    ops: int = 0
    seconds: float = 0.0  # the part's operators, timed one by one
    kernel_floor: float = 0.0  # its arithmetic operators at their replayed best


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    def fresh(self, device: torch.device) -> Tensor:
        """Random values (zeros for integers) laid out as the original, broadcast strides included."""
        size = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True)) if all(self.shape) else 0
        storage = torch.zeros(size, dtype=self.dtype, device=device)
        if storage.is_floating_point():
            storage.uniform_(-1, 1)
        return storage.as_strided(self.shape, self.stride)


@dataclass
class Kernel:
    """One arithmetic operator of the step with its shapes: how often the step calls it, and its floor."""

    op: Any
    args: Any
    kwargs: Any
    flops: int
    calls: int = 0
    part_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    best: float = 0.0

    def figures(self) -> dict[str, Any]:
        shapes = [list(a.shape) for a in tree_flatten((self.args, self.kwargs))[0] if isinstance(a, TensorSpec)]
        return {"op": self.op.__name__, "shapes": shapes, "calls": self.calls, "flops": self.flops,
                "best_s": self.best, "flops_per_s": self.flops / self.best}


def spec_of(value: Any) -> Any:
    return TensorSpec(tuple(value.shape), tuple(value.stride()), value.dtype) if isinstance(value, Tensor) else value


@dataclass(frozen=True)
class Stopwatch:
    """Seconds on ``clock``, the device synchronised at both ends: wall-clock time, or the process's
    CPU time, which a single-threaded run on a CPU shared with other jobs does not spend waiting."""

    device: torch.device
    clock: Callable[[], float] = time.perf_counter

    def start(self) -> float:
        synchronize(self.device)
        return self.clock()

    def since(self, started: float) -> float:
        synchronize(self.device)
        return self.clock() - started

    def times(self, run: Callable[[], Any], repeats: int) -> list[float]:
        """The seconds of each of ``repeats`` calls of ``run``."""
        seconds = []
        for _ in range(repeats):
            started = self.start()
            run()
            seconds.append(self.since(started))
        return seconds


class PartTracker:
    """Which part of the step is running: a stack of forward scopes, and in backward the part whose
    forward created the autograd node being run (the node's pre-hook sets it)."""

    def __init__(self) -> None:
        self.stack: list[str] = ["loss"]
        self.nodes: dict[Any, str] = {}

    @property
    def current(self) -> str:
        return self.stack[-1]

    @contextmanager
    def scope(self, part: str) -> Iterator[None]:
        self.stack.append(part)
        try:
            yield
        finally:
            self.stack.pop()

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def scoped(*args: Any, **kwargs: Any) -> Any:
            with self.scope(part):
                return function(*args, **kwargs)
        return scoped

    def watch_module(self, part: str, module: nn.Module) -> None:
        module.register_forward_pre_hook(lambda *_: self.stack.append(part))
        module.register_forward_hook(lambda *_: self._leave())

    def _leave(self) -> None:
        self.stack.pop()

    def hook_backward(self) -> None:
        """Before backward: each recorded node sets the part when it runs."""
        for node, part in self.nodes.items():
            node.register_prehook(lambda *_, part=part: self._enter_backward(part))
        self.nodes.clear()

    def _enter_backward(self, part: str) -> None:
        self.stack[-1] = part


class NodeRecorder(TorchFunctionMode):
    """Remembers which part created each autograd node of the forward pass."""

    def __init__(self, tracker: PartTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, Tensor) and value.grad_fn is not None:
                self.tracker.nodes.setdefault(value.grad_fn, self.tracker.current)
        return out


class OperatorTimer(TorchDispatchMode):
    """Times, counts and costs every aten operator, charged to the tracker's current part."""

    def __init__(self, tracker: PartTracker, watch: Stopwatch) -> None:
        super().__init__()
        self.tracker, self.watch = tracker, watch
        self.parts = {part: PartFigures() for part in PARTS}
        self.kernels: dict[str, Kernel] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        started = self.watch.start()
        out = func(*args, **kwargs)
        figures = self.parts[self.tracker.current]
        figures.seconds += self.watch.since(started)
        figures.ops += 1
        formula = FLOP_FORMULAS.get(func.overloadpacket)
        if formula is not None:
            flops = formula(*args, **kwargs, out_val=out)
            figures.flops += flops
            spec_args, spec_kwargs = tree_map(spec_of, args), tree_map(spec_of, kwargs)
            kernel = self.kernels.setdefault(repr((func, spec_args, spec_kwargs)),
                                             Kernel(func, spec_args, spec_kwargs, flops))
            kernel.calls += 1
            kernel.part_calls[self.tracker.current] += 1
        return out


def instrumented_step(step: TrainingStep, watch: Stopwatch) -> OperatorTimer:
    """One training step with its operators charged to the parts."""
    tracker = PartTracker()
    pipeline = step.pipeline
    tracker.watch_module("encoder", pipeline.encoder)
    tracker.watch_module("decoder", pipeline.decoder)
    rollout = pipeline.integrator.rollout
    pipeline.integrator.rollout = tracker.wrap("rollout", rollout)  # type: ignore[method-assign]
    timer = OperatorTimer(tracker, watch)
    try:
        with timer:
            with NodeRecorder(tracker):
                loss = step.forward()
            tracker.hook_backward()
            step.backward(loss)
            tracker.stack[-1] = "optimiser"
            step.update()
    finally:
        del pipeline.integrator.rollout
    return timer


def counted_flops(step: TrainingStep) -> int:
    """The step's FLOPs as ``FlopCounterMode`` counts them."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()




def replay(kernel: Kernel, repeats: int, watch: Stopwatch) -> float:
    """The kernel's best time on fresh tensors of its shapes, layouts and dtypes (one untimed call first)."""
    args, kwargs = tree_map(lambda v: v.fresh(watch.device) if isinstance(v, TensorSpec) else v,
                            (kernel.args, kernel.kwargs))
    with torch.no_grad():
        kernel.op(*args, **kwargs)
        return min(watch.times(lambda: kernel.op(*args, **kwargs), repeats))


def peak_rate(repeats: int, watch: Stopwatch) -> float:
    """FLOP/s of the best float32 square matrix product: the machine's attainable peak (a GPU needs
    larger products than a CPU to reach it)."""
    rates = []
    for n in (4096, 8192) if watch.device.type == "cuda" else (512, 1024, 2048):
        a, b = torch.rand(n, n, device=watch.device), torch.rand(n, n, device=watch.device)
        a @ b
        rates.append(2 * n**3 / min(watch.times(lambda a=a, b=b: a @ b, repeats)))
    return max(rates)


def machine(device: torch.device) -> dict[str, Any]:
    """CPU model, its vector and matrix extensions, the threads torch uses, and the GPU where there is one."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "flags": [],
                            "threads": torch.get_num_threads(),
                            "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        lines = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line)
        lines = {key.strip(): value.strip() for key, value in lines.items()}
        info["cpu"] = lines.get("model name", info["cpu"])
        present = set(lines.get("flags", "").split())
        info["flags"] = [flag for flag in CPU_FLAGS if flag in present]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def measure(step: TrainingStep, steps: int, warmup: int, repeats: int, passes: int, cpu_time: bool) -> dict[str, Any]:
    """Every figure of the report, as a JSON-ready dict."""
    device = step.device
    watch = Stopwatch(device, time.process_time if cpu_time else time.perf_counter)
    for _ in range(warmup):
        step()
    total_flops = counted_flops(step)
    timer, *others = [instrumented_step(step, watch) for _ in range(passes)]
    for name, figures in timer.parts.items():  # each part at its quickest pass: the least disturbed
        figures.seconds = min([figures.seconds, *(other.parts[name].seconds for other in others)])
    step_seconds = statistics.median(watch.times(step, steps))
    for kernel in timer.kernels.values():
        kernel.best = replay(kernel, repeats, watch)
        for part, calls in kernel.part_calls.items():
            timer.parts[part].kernel_floor += calls * kernel.best
    peak = peak_rate(repeats, watch)
    parts = {name: {**asdict(figures), "peak_floor": figures.flops / peak} for name, figures in timer.parts.items()}
    operators = sum(figures.seconds for figures in timer.parts.values())
    batch = step.batch.shape[0]
    kernels = sorted(timer.kernels.values(), key=lambda k: -k.flops * k.calls)
    return {
        "machine": machine(device), "device": str(device), "clock": "cpu" if cpu_time else "wall",
        "config": {"task": step.config.data.task, "recipe": step.config.training.recipe, "batch": batch,
                   "frames": step.objective.train_length, "encoder": step.config.encoder.name,
                   "physics": step.config.physics.name, "decoder": step.config.decoder.name},
        "peak_flops_per_s": peak, "step_flops": total_flops, "step_seconds": step_seconds,
        "framework_seconds": step_seconds - operators,
        "operators": sum(figures.ops for figures in timer.parts.values()),
        "sequences_per_s": batch / step_seconds,
        "floor_sequences_per_s": batch * peak / total_flops if total_flops else None,
        "parts": parts,
        "kernels": [kernel.figures() for kernel in kernels],
    }


def fraction(floor: float, measured: float) -> str:
    return f"{floor / measured:.0%}" if measured > 0 else "-"


def table(report: dict[str, Any]) -> str:
    """The report as Markdown: the machine, the parts against their floors, the dominant kernels."""
    m, c = report["machine"], report["config"]
    lines = [f"machine: {m['cpu']} ({', '.join(m['flags']) or 'no avx2/avx512/amx'}; torch {m['torch']} "
             f"{m['capability']}, {m['threads']} threads){' GPU ' + m['gpu'] if 'gpu' in m else ''}, "
             f"device {report['device']}, {report['clock']} clock",
             f"step: task {c['task']}, recipe {c['recipe']}, batch {c['batch']}, {c['frames']} frames "
             f"({c['encoder']} → {c['physics']} → {c['decoder']})",
             f"peak (best float32 matrix product): {report['peak_flops_per_s'] / 1e9:.1f} GFLOP/s; "
             f"step {report['step_flops'] / 1e9:.2f} GFLOP (FlopCounterMode), {1e3 * report['step_seconds']:.1f} ms, "
             f"{report['sequences_per_s']:.1f} seq/s against a floor of "
             f"{report['floor_sequences_per_s'] or 0:.0f} seq/s "
             f"({fraction(report['step_flops'] / report['peak_flops_per_s'], report['step_seconds'])} of peak); "
             f"{report['operators']} aten operators per step",
             "",
             "| part | GFLOP | operators | measured ms | kernel floor ms | peak floor ms | kernel floor / measured "
             "| peak floor / measured |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, p in report["parts"].items():
        lines.append(f"| {name} | {p['flops'] / 1e9:.3f} | {p['ops']} | {1e3 * p['seconds']:.1f} | "
                     f"{1e3 * p['kernel_floor']:.1f} | {1e3 * p['peak_floor']:.1f} | "
                     f"{fraction(p['kernel_floor'], p['seconds'])} | {fraction(p['peak_floor'], p['seconds'])} |")
    kernel_floor = sum(p["kernel_floor"] for p in report["parts"].values())
    peak_floor = sum(p["peak_floor"] for p in report["parts"].values())
    lines.append(f"| framework | | | {1e3 * report['framework_seconds']:.1f} | | | | |")
    lines.append(f"| step | {report['step_flops'] / 1e9:.3f} | {report['operators']} | "
                 f"{1e3 * report['step_seconds']:.1f} | {1e3 * kernel_floor:.1f} | {1e3 * peak_floor:.1f} | "
                 f"{fraction(kernel_floor, report['step_seconds'])} | {fraction(peak_floor, report['step_seconds'])} |")
    lines += ["", "| dominant kernel | calls | GFLOP each | best ms | GFLOP/s |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {k['op']} {k['shapes']} | {k['calls']} | {k['flops'] / 1e9:.3f} | {1e3 * k['best_s']:.2f} | "
              f"{k['flops_per_s'] / 1e9:.1f} |" for k in report["kernels"][:DOMINANT]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser)
    parser.add_argument("--steps", type=int, default=5, help="timed plain steps (their median is the step time)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5, help="replays of each kernel (the best counts)")
    parser.add_argument("--passes", type=int, default=3, help="instrumented steps (each part's quickest counts)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time on the process's CPU clock, not the wall clock: for a CPU shared with other "
                             "jobs, with OMP_NUM_THREADS=1")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    report = measure(build_step(args), args.steps, args.warmup, args.repeats, args.passes, args.cpu_time)
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
