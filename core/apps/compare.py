"""Integrator comparison sweeps: one physics, several integrators and seeds, laid out for TensorBoard.

Runs go to ``DIR/<physics>/<integrator>/seed<k>`` so TensorBoard shows one curve per integrator and
seed on every chart (tags are identical across runs). The sweep root gets a custom-scalars layout that
groups each metric across integrators, and ``summary.csv``, ``summary.md`` and ``summary.png`` (the
validation error against wall time, per integrator).

A sweep run again into the same folder skips the runs that finished and restarts the others. When a
run fails, the runs still going are stopped and the summary covers what finished. No run process
outlives the sweep: SIGTERM to the sweep stops its runs before it exits, and on Linux each run
process asks the kernel for SIGTERM when the sweep dies (``PR_SET_PDEATHSIG``), which covers SIGKILL.
"""
from __future__ import annotations

import csv
import ctypes
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from pivf.core.kernel.atomic import atomic_write_text
from pivf.core.kernel.build import create_plugin
from pivf.core.kernel.config import ExperimentConfig, dump_yaml, validate_plugin_sections
from pivf.core.kernel.errors import ConfigError, PivfUserError
from pivf.core.kernel.images import pyplot, save_figure
from pivf.core.kernel.plugin import format_validation_error
from pivf.core.kernel.registry import registry
from pivf.core.training.runs import run_finished

__all__ = ["finish_sweep", "plan_sweep", "run_sweep", "sweep_configs", "write_layout", "write_summary"]

Log = Callable[[str], None]
#: charted for every objective, after the objective's own headline metrics
COMMON_LAYOUT_METRICS = ("valid/loss", "train/loss", "perf/samples_per_s")
#: seconds between looks at the running processes, and granted to a stopped one before it is killed
POLL_S = 0.2
STOP_GRACE_S = 10.0
#: Linux's prctl option: the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1
#: how a sweep starts a run process: ``run_child`` with the sweep's pid, then ``pivf train``'s arguments
RUN_CHILD = "from pivf.core.apps.compare import run_child; run_child()"


def sweep_configs(base: ExperimentConfig, integrators: list[str], seeds: list[int],
                  out: Path) -> list[ExperimentConfig]:
    """One config per (integrator, seed); integrator options the new integrator shares (substeps) carry over."""
    configs = []
    for name in integrators:
        cls = registry().get("integrator", name)
        shared = {k: v for k, v in base.integrator.params.items() if k in cls.Params.model_fields}
        for seed in seeds:
            raw = base.to_dict()
            raw["integrator"] = {"name": name, **shared}
            raw["training"]["seed"] = seed
            raw["logging"]["out"] = str(out / base.physics.name / name)
            raw["logging"]["run_name"] = f"seed{seed}"
            try:
                configs.append(validate_plugin_sections(ExperimentConfig.model_validate(raw)))
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, "config")) from None
    return configs


def _label(config: ExperimentConfig) -> str:
    return f"{config.integrator.name}/seed{config.training.seed}"


def plan_sweep(configs: list[ExperimentConfig], overwrite: bool, log: Log) -> list[tuple[ExperimentConfig, bool]]:
    """(config, whether its run directory is replaced) for each run to train: finished runs are
    skipped unless ``overwrite``, unfinished ones (killed, failed) start again."""
    plan = []
    for config in configs:
        run_dir = Path(config.logging.out) / str(config.logging.run_name)
        if run_finished(run_dir) and not overwrite:
            log(f"== skipping {_label(config)}: finished already ({run_dir}; --overwrite trains it again)")
            continue
        if run_dir.exists() and not run_finished(run_dir):
            log(f"== restarting {_label(config)}: {run_dir} holds an unfinished run")
        plan.append((config, run_dir.exists()))
    return plan


def run_sweep(plan: list[tuple[ExperimentConfig, bool]], jobs: int, log: Log) -> str | None:
    """Train every planned run: in this process one after another, or as ``jobs`` concurrent
    processes. Stops at the first failure (stopping the other processes) and returns its message."""
    if jobs <= 1:
        from pivf.core.training.train import train

        for config, overwrite in plan:
            log(f"== {config.physics.name} / {config.integrator.name} / seed {config.training.seed}")
            try:
                train(config, log=log, quiet=True, overwrite=overwrite)
            except PivfUserError as exc:
                return f"run {_label(config)} failed: {exc}"
        return None
    with _sigterm_as_exit(), tempfile.TemporaryDirectory() as tmp:
        return _run_processes(plan, jobs, Path(tmp), log)


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit (128 + 15), so the run processes are stopped on the way out (by
    default Python would die at once and leave them training)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_child() -> None:
    """A sweep's run process (``python -c RUN_CHILD SWEEP_PID ARGS...``): dies with the sweep, then is
    ``pivf train ARGS``."""
    sweep, args = int(sys.argv[1]), sys.argv[2:]
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != sweep:  # the sweep ended before the request took effect
        raise SystemExit(128 + signal.SIGTERM)
    from pivf.cli.main import app

    app(args, prog_name="pivf")


def _run_processes(plan: list[tuple[ExperimentConfig, bool]], jobs: int, tmp: Path, log: Log) -> str | None:
    pending = list(enumerate(plan))
    running: list[tuple[ExperimentConfig, subprocess.Popen, IO[str]]] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i, (config, overwrite) = pending.pop(0)
                path = tmp / f"run{i}.yaml"
                path.write_text(dump_yaml(config))
                cmd = [sys.executable, "-c", RUN_CHILD, str(os.getpid()), "train", "--config", str(path), "--quiet"]
                err: IO[str] = open(tmp / f"run{i}.err", "w+")  # a file, not a pipe: a chatty run cannot block on it
                proc = subprocess.Popen(cmd + (["--overwrite"] if overwrite else []), stdout=subprocess.DEVNULL,
                                        stderr=err, text=True)
                running.append((config, proc, err))
            time.sleep(POLL_S)
            for entry in [e for e in running if e[1].poll() is not None]:
                running.remove(entry)
                config, proc, err = entry
                err.seek(0)
                lines = err.read().strip().splitlines()
                err.close()
                if proc.returncode != 0:
                    reason = lines[-1].removeprefix("error: ") if lines else f"exit code {proc.returncode}"
                    if running:
                        log(f"== stopping {len(running)} other run(s)")
                    return f"run {_label(config)} failed: {reason}"
                log(f"== finished {_label(config)}")
        return None
    finally:
        _stop(running)


def _stop(running: list[tuple[ExperimentConfig, subprocess.Popen, IO[str]]]) -> None:
    """Terminate the processes still going and wait for them (killing any that linger)."""
    for _, proc, _ in running:
        if proc.poll() is None:
            proc.terminate()
    for _, proc, err in running:
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def finish_sweep(out: Path, failure: str | None, log: Log) -> None:
    """The summary of the finished runs, then the failure, if a run failed."""
    if failure is None or collect_runs(out):
        write_summary(out, log)
    else:
        log("no run finished, so no summary")
    if failure is not None:
        raise PivfUserError(failure)


def write_layout(out: Path, config: ExperimentConfig, integrators: list[str]) -> None:
    """A custom-scalars layout: one chart per metric (the objective's headline metrics first), one
    line per integrator run. A headline chart holds the validation curve and the test split's figure
    at the run's last step: metrics of extrapolation exist only on the longer test sequences. Each
    learned physical parameter gets a chart, its true value drawn beside it."""
    from torch.utils.tensorboard import SummaryWriter

    headline = registry().get("objective", config.objective.name).headline
    charts = {metric: ["Multiline", [f"^(valid|test)/{metric}$"]] for metric in headline}
    for name in create_plugin("physics", config.physics).learned_parameters():
        charts[f"param/{name}"] = ["Multiline", [f"^param(_true)?/{name}$"]]
    charts.update({tag: ["Multiline", [f"^{tag}$"]] for tag in COMMON_LAYOUT_METRICS})
    layout = {"by integrator": charts}
    writer = SummaryWriter(log_dir=str(out))
    writer.add_custom_scalars(layout)
    writer.add_text("sweep", "integrators: " + ", ".join(integrators))
    writer.close()


def collect_runs(out: Path) -> list[dict[str, Any]]:
    rows = []
    for metrics_path in sorted(Path(out).glob("*/*/seed*/metrics.json")):
        try:
            rows.append(_summary_row(json.loads(metrics_path.read_text(encoding="utf-8")), metrics_path, out))
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, (KeyError, TypeError)) else str(exc)
            raise PivfUserError(f"{metrics_path}: not a pivf metrics file ({' '.join(reason.split())}); train that "
                                "run again or remove it") from None
    return rows


def _summary_row(metrics: dict[str, Any], metrics_path: Path, out: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"physics": metrics["physics"], "integrator": metrics["integrator"], "seed": metrics["seed"]}
    row.update({k: v for k, v in metrics["eval"].items() if k != "split"})
    row.update({f"{name}_learned": p["learned"] for name, p in metrics["params"].items()})
    row.update({f"{name}_rel_error": p["rel_error"] for name, p in metrics["params"].items() if "rel_error" in p})
    row.update({"wall_s": metrics["train"]["wall_s"], "samples_per_s": metrics["train"]["samples_per_s"],
                "run": str(metrics_path.parent.relative_to(out))})
    return row


def write_summary(out: Path, log: Log = print) -> list[dict[str, Any]]:
    """summary.csv (one row per run), summary.md (per-integrator means) and summary.png."""
    rows = collect_runs(out)
    if not rows:
        raise PivfUserError(f"{out} holds no finished runs (looked for */*/seed*/metrics.json)")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buffer.getvalue())
    atomic_write_text(out / "summary.md", _markdown(rows, columns))
    _plot(out, rows)
    log(f"summary of {len(rows)} runs: {out / 'summary.csv'}, {out / 'summary.md'}, {out / 'summary.png'}")
    return rows


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    numeric = [c for c in columns if c not in ("physics", "integrator", "seed", "run")]
    lines = ["| physics | integrator | seeds | " + " | ".join(numeric) + " |",
             "|---" * (3 + len(numeric)) + "|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["physics"], row["integrator"]), []).append(row)
    for (physics, integrator), group in groups.items():
        means = []
        for column in numeric:
            values = [r[column] for r in group if isinstance(r.get(column), (int, float))]
            means.append(f"{statistics.fmean(values):.4g}" if values else "")
        lines.append(f"| {physics} | {integrator} | {len(group)} | " + " | ".join(means) + " |")
    return "Means over seeds.\n\n" + "\n".join(lines) + "\n"


def _plot(out: Path, rows: list[dict[str, Any]]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fig, ax = pyplot().subplots(figsize=(6, 4))
    colours: dict[str, Any] = {}
    for row in rows:
        events = EventAccumulator(str(out / row["run"]), size_guidance={"scalars": 0})
        events.Reload()
        tag = next((t for t in ("valid/pred", "valid/loss") if t in events.Tags()["scalars"]), None)
        if tag is None:
            continue
        scalars = events.Scalars(tag)
        start = scalars[0].wall_time
        colour = colours.setdefault(row["integrator"], f"C{len(colours)}")
        ax.plot([s.wall_time - start for s in scalars], [s.value for s in scalars], color=colour,
                label=row["integrator"] if row["integrator"] not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("validation error")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "summary.png")
