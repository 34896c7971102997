"""What every launcher of ``pivf compare`` shares: a sweep's jobs, the command each job runs, and how a
job's failure is told.

A job is an ordinary ``pivf train --config FILE`` (under ``torchrun`` when a run takes several GPUs),
so a run trained by SLURM or Ray is the run the local launcher would train: its own run directory,
its own metrics.json. Each launcher is a module (``launch_local``, ``launch_slurm``, ``launch_ray``)
with ``job_folder(out)``, a context giving the folder for the jobs' configs and logs, and
``launch(jobs, settings, folder, log)``, which trains the jobs and returns the failures' messages; a
module's optional ``check(settings)`` refuses settings before anything is written.
"""
from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pivf.core.kernel.config import ExperimentConfig, dump_yaml
from pivf.core.kernel.errors import PivfUserError

__all__ = ["LAUNCHERS", "Job", "LaunchSettings", "job_command", "launcher", "run_job",
           "sigterm_as_exit", "tail", "write_job_files"]

Log = Callable[[str], None]
#: launcher name → (its module under pivf.core.apps, the extra that installs what it needs, the package)
LAUNCHERS = {"local": ("launch_local", None, None), "slurm": ("launch_slurm", "slurm", "submitit"),
             "ray": ("launch_ray", "ray", "ray")}
#: launchers that can start one run on several machines
MULTI_NODE = ("slurm",)
#: lines of a failed job's log shown with its failure
TAIL_LINES = 15
#: torchrun's rendezvous port on the first node of a multi-node run
RENDEZVOUS_PORT = 29500


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its config, whether it replaces an unfinished or finished run, and the
    files the launcher writes for it (the config it trains, its log)."""

    label: str
    config: ExperimentConfig
    overwrite: bool
    config_file: Path
    log_file: Path


@dataclass(frozen=True)
class LaunchSettings:
    """Where and with what each run trains; the fields a launcher does not use keep their defaults."""

    jobs: int | None = None  # runs at once; None: as many as the launcher can (local: 1)
    cpus_per_run: int = 1
    gpus_per_run: int = 0
    nodes_per_run: int = 1
    partition: str | None = None
    time_min: int | None = None
    slurm_params: tuple[tuple[str, str], ...] = ()
    submitit_cluster: str = "slurm"
    ray_address: str | None = None


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit (128 + 15), so a launcher stops its runs or cancels its jobs on the way out (by
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


def launcher(name: str, settings: LaunchSettings) -> ModuleType:
    """The launcher's module, once it has accepted the settings; one whose extra is not installed is a
    one-line error naming the extra."""
    if name not in LAUNCHERS:
        raise PivfUserError(f"--launcher: unknown launcher '{name}'; allowed: {', '.join(LAUNCHERS)}")
    module_name, extra, package = LAUNCHERS[name]
    if package is not None:
        try:
            importlib.import_module(package)
        except ImportError:
            raise PivfUserError(f"--launcher {name} needs {package}, which is not installed: "
                                f"pip install \"pivf[{extra}]\"") from None
    if settings.nodes_per_run > 1 and name not in MULTI_NODE:
        raise PivfUserError(f"--nodes-per-run: the {name} launcher trains each run on one machine; "
                            f"runs across machines: --launcher {', '.join(MULTI_NODE)}")
    module = importlib.import_module(f"pivf.core.apps.{module_name}")
    if hasattr(module, "check"):
        module.check(settings)
    return module


def write_job_files(jobs: list[Job]) -> None:
    for job in jobs:
        job.config_file.parent.mkdir(parents=True, exist_ok=True)
        job.config_file.write_text(dump_yaml(job.config))
        job.log_file.parent.mkdir(parents=True, exist_ok=True)


def job_command(job: Job, settings: LaunchSettings, node_rank: int = 0, first_node: str = "localhost") -> list[str]:
    """``python -m pivf.cli train --config FILE --quiet``; with several GPUs or nodes per run, under
    torchrun (one process per GPU; several nodes meet at ``first_node``)."""
    train = ["-m", "pivf.cli", "train", "--config", str(job.config_file), "--quiet"]
    train += ["--overwrite"] if job.overwrite else []
    processes = max(settings.gpus_per_run, 1)
    if processes == 1 and settings.nodes_per_run == 1:
        return [sys.executable, *train]
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    if settings.nodes_per_run == 1:
        torchrun.append("--standalone")
    else:
        torchrun += [f"--nnodes={settings.nodes_per_run}", f"--node_rank={node_rank}", "--rdzv_backend=c10d",
                     f"--rdzv_endpoint={first_node}:{RENDEZVOUS_PORT}", f"--rdzv_id={job.config_file.stem}"]
    return [*torchrun, *train]


def run_job(command: list[str], log_file: str, cwd: str) -> tuple[int, list[str]]:
    """Run one job's command in ``cwd`` (the submitting shell's folder: the config's relative paths
    mean what they meant there), its output to ``log_file``: (exit code, the log's last lines). Runs
    inside a SLURM job or a Ray task, so it takes and returns plain values."""
    with open(log_file, "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd).returncode
    return code, tail(Path(log_file))


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []


def failure(job: Job, reason: str, lines: list[str], log: Log) -> str:
    """Log a failed job's last lines; its one-line message."""
    log(f"== {job.label} failed ({job.log_file}):")
    for line in lines:
        log(f"   {line}")
    return f"run {job.label} failed: {reason}"


def exit_reason(code: int, lines: list[str]) -> str:
    """A run's last line (its one-line error, or a traceback's last line), or its exit code."""
    return lines[-1].removeprefix("error: ") if lines else f"exit code {code}"
