"""The local launcher: the sweep's runs on this machine, one after another in this process, or as
``--jobs N`` concurrent processes.

At the first failure the processes still going are stopped (they share this machine's devices, and
the sweep has a failure to report). No run process outlives the sweep: SIGTERM to the sweep stops its
runs before it exits, and on Linux each run process asks the kernel for SIGTERM when the sweep dies
(``PR_SET_PDEATHSIG``), which covers SIGKILL.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pivf.core.apps.launch import Job, LaunchSettings, Log, exit_reason, job_command, sigterm_as_exit, tail
from pivf.core.kernel.errors import PivfUserError

__all__ = ["job_folder", "launch", "run_child"]

#: seconds between looks at the running processes, and granted to a stopped one before it is killed
POLL_S = 0.2
STOP_GRACE_S = 10.0
#: Linux's prctl option: the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1
#: how a sweep starts a run process: ``run_child`` with the sweep's pid, then the job's command
RUN_CHILD = "from pivf.core.apps.launch_local import run_child; run_child()"


@contextmanager
def job_folder(out: Path) -> Iterator[Path]:
    """The jobs' config files and logs live only as long as the sweep: nothing else reads them."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def launch(jobs: list[Job], settings: LaunchSettings, folder: Path, log: Log) -> list[str]:
    """Train every job; stops at the first failure and returns its message."""
    if (settings.jobs or 1) <= 1 and settings.gpus_per_run <= 1:
        return _in_process(jobs, log)
    with sigterm_as_exit():
        return _run_processes(jobs, settings, log)


def _in_process(jobs: list[Job], log: Log) -> list[str]:
    from pivf.core.training.train import train

    for job in jobs:
        config = job.config
        log(f"== {config.physics.name} / {job.label}")
        try:
            train(config, log=log, quiet=True, overwrite=job.overwrite)
        except PivfUserError as exc:
            return [f"run {job.label} failed: {exc}"]
    return []


def run_child() -> None:
    """A sweep's run process (``python -c RUN_CHILD SWEEP_PID COMMAND...``): dies with the sweep, then
    becomes the job's command (the request survives exec)."""
    sweep, command = int(sys.argv[1]), sys.argv[2:]
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != sweep:  # the sweep ended before the request took effect
        raise SystemExit(128 + signal.SIGTERM)
    os.execv(command[0], command)


def _run_processes(jobs: list[Job], settings: LaunchSettings, log: Log) -> list[str]:
    pending = list(jobs)
    running: list[tuple[Job, subprocess.Popen, IO[str]]] = []
    at_once = settings.jobs or 1
    try:
        while pending or running:
            while pending and len(running) < at_once:
                job = pending.pop(0)
                cmd = [sys.executable, "-c", RUN_CHILD, str(os.getpid()), *job_command(job, settings)]
                err: IO[str] = open(job.log_file, "w")  # a file, not a pipe: a chatty run cannot block on it
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
                running.append((job, proc, err))
            time.sleep(POLL_S)
            for entry in [e for e in running if e[1].poll() is not None]:
                running.remove(entry)
                job, proc, err = entry
                err.close()
                if proc.returncode != 0:
                    if running:
                        log(f"== stopping {len(running)} other run(s)")
                    return [f"run {job.label} failed: {exit_reason(proc.returncode, tail(job.log_file))}"]
                log(f"== finished {job.label}")
        return []
    finally:
        _stop(running)


def _stop(running: list[tuple[Job, subprocess.Popen, IO[str]]]) -> None:
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
