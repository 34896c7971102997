"""Rollout cost of every integrator: milliseconds per forward and per forward+backward pass of a
batch of spring-system rollouts (PAIG's two objects), gradients to the initial state and to k, l.

Where a method exists both as a hand-written loop and in torchdiffeq it is timed both ways (explicit
Euler, RK4), and each torchdiffeq method is timed called once per frame interval and once over all
frame times, since torchdiffeq's fixed-grid backward grows quadratically with the output times.

    python benchmarks/rollout_benchmark.py --device cpu
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import pivf
from pivf.core.kernel.integrator import Integrator
from pivf.core.kernel.physics import PhysicsSystem
from pivf.core.kernel.registry import registry


class ExplicitEulerLoop(Integrator):
    """The hand-written twin of torchdiffeq's euler: both derivatives at the start of the step."""

    name = "explicit_euler"
    order = 1

    def step(self, physics: PhysicsSystem, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        dq, dp = physics.derivatives(q, p)
        return q + h * dq, p + h * dp


class ClassicRK4Loop(Integrator):
    """Classic RK4 (1/6, 1/3, 1/3, 1/6), the hand-written counterpart of torchdiffeq's rk4 (3/8 rule)."""

    name = "rk4"
    order = 4

    def step(self, physics: PhysicsSystem, q: Tensor, p: Tensor, h: float) -> tuple[Tensor, Tensor]:
        k1q, k1p = physics.derivatives(q, p)
        k2q, k2p = physics.derivatives(q + h / 2 * k1q, p + h / 2 * k1p)
        k3q, k3p = physics.derivatives(q + h / 2 * k2q, p + h / 2 * k2p)
        k4q, k4p = physics.derivatives(q + h * k3q, p + h * k3p)
        return q + h / 6 * (k1q + 2 * k2q + 2 * k3q + k4q), p + h / 6 * (k1p + 2 * k2p + 2 * k3p + k4p)


@dataclass
class Case:
    integrator: str
    implementation: str
    make: Callable[[], Integrator]


def cases(substeps: int, tol: float, only: set[str] | None) -> list[Case]:
    """Every registered integrator (torchdiffeq ones per interval and once), plus the hand loops."""
    found: list[Case] = []
    for name in registry().names("integrator"):
        fields = registry().get("integrator", name).Params.model_fields
        options = {"substeps": substeps, **({"rtol": tol, "atol": tol} if "rtol" in fields else {})}
        if "solve" not in fields:
            found.append(Case(name, "pivf loop", lambda n=name, o=options: pivf.integrator(n, **o)))
            continue
        for solve in ("per_interval", "once"):
            found.append(Case(name, f"torchdiffeq, {solve.replace('_', ' ')}",
                              lambda n=name, o=options, s=solve: pivf.integrator(n, solve=s, **o)))
        if name in ("rk4", "dopri5"):
            found.append(Case(name, "torchdiffeq, per interval, adjoint",
                              lambda n=name, o=options: pivf.integrator(n, adjoint=True, **o)))
    for loop in (ExplicitEulerLoop, ClassicRK4Loop):
        found.append(Case(loop.name, "hand loop" + (" (classic)" if loop is ClassicRK4Loop else ""),
                          lambda c=loop: c(c.validate_params({"substeps": substeps}))))
    found.sort(key=lambda c: c.integrator)
    return [c for c in found if only is None or c.integrator in only]


def spring_batch(batch: int, device: torch.device) -> tuple[PhysicsSystem, Tensor, Tensor]:
    """PAIG's spring at its ground truth (k=4, half rest length 6), states drawn as its generator
    draws them: separation 6–18 px at a random angle around the image centre, a few px per unit
    time. The objects never meet, where the spring's direction is singular and adaptive steps collapse."""
    physics = pivf.physics("spring", k=4.0, l=6.0).to(device)
    gen = torch.Generator().manual_seed(0)
    angle = 2 * torch.pi * torch.rand(batch, generator=gen)
    half = 6 * (0.5 + torch.rand(batch, generator=gen))
    offset = half[:, None] * torch.stack((angle.cos(), angle.sin()), dim=-1)
    q0 = 16 + torch.stack((offset, -offset), dim=1)
    p0 = 2 * torch.randn(batch, 2, 2, generator=gen)
    return physics, q0.to(device), p0.to(device)


def timed(fn: Callable[[], None], device: torch.device, repeats: int, budget_s: float = 20.0) -> float:
    """Median milliseconds of ``repeats`` calls after one warm-up call; slow cases stop repeating
    once ``budget_s`` is spent (adaptive solvers at tight tolerances take seconds per call)."""
    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * 1e3

    once()
    times = [once()]
    while len(times) < repeats and sum(times) < budget_s * 1e3:
        times.append(once())
    return statistics.median(times)


def measure(case: Case, physics: PhysicsSystem, q0: Tensor, p0: Tensor, t: Tensor,
            device: torch.device, repeats: int) -> tuple[float, float]:
    integrator = case.make()

    def forward() -> None:
        with torch.no_grad():
            integrator.rollout(physics, q0, p0, t)

    def forward_backward() -> None:
        q0_, p0_ = q0.clone().requires_grad_(True), p0.clone().requires_grad_(True)
        q, p = integrator.rollout(physics, q0_, p0_, t)
        loss = (q**2).mean() + (p**2).mean()
        torch.autograd.grad(loss, (q0_, p0_, *physics.parameters()))

    return timed(forward, device, repeats), timed(forward_backward, device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--substeps", type=int, default=5)
    parser.add_argument("--dt", type=float, default=0.3, help="frame interval (PAIG's spring: 0.3)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tol", type=float, default=1e-3, help="rtol and atol of the adaptive solvers")
    parser.add_argument("--only", default="", help="comma-separated integrator names")
    args = parser.parse_args()

    device = torch.device(args.device)
    physics, q0, p0 = spring_batch(args.batch, device)
    t = torch.arange(args.frames, device=device) * args.dt
    only = set(args.only.split(",")) if args.only else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"spring, batch {args.batch}, {args.frames} frames, {args.substeps} substeps, float32, "
          f"adaptive rtol=atol={args.tol:g}, {name}, torch {torch.__version__}\n")
    print("| integrator | implementation | forward ms | forward+backward ms |")
    print("|---|---|---:|---:|")
    for case in cases(args.substeps, args.tol, only):
        fwd, fwd_bwd = measure(case, physics, q0, p0, t, device, args.repeats)
        print(f"| {case.integrator} | {case.implementation} | {fwd:.1f} | {fwd_bwd:.1f} |", flush=True)


if __name__ == "__main__":
    main()
