"""The Ray launcher (``pivf[ray]``): each run of the sweep is a Ray task that runs its ``pivf train``.

``--ray-address`` joins a running cluster (``auto``, or ``HOST:PORT``); without it the sweep starts a
Ray instance on this machine for its own time, ``--jobs`` workers big (all CPUs without it). Each task
asks for ``--cpus-per-run`` CPUs and ``--gpus-per-run`` GPUs, so Ray places runs where they fit. The
jobs' configs and logs are in ``OUT/.ray``, a folder every node must see.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pivf.core.apps.launch import Job, LaunchSettings, Log, exit_reason, failure, job_command, run_job, sigterm_as_exit

__all__ = ["job_folder", "launch"]


@contextmanager
def job_folder(out: Path) -> Iterator[Path]:
    yield out / ".ray"


def launch(jobs: list[Job], settings: LaunchSettings, folder: Path, log: Log) -> list[str]:
    """Run every job as a Ray task, at most ``settings.jobs`` at once; a failed one costs none of the
    others. Ctrl-C or SIGTERM cancels the tasks."""
    import ray

    started = not ray.is_initialized()
    if started:
        local = settings.ray_address is None
        ray.init(address=settings.ray_address, include_dashboard=False, log_to_driver=False,
                 num_cpus=settings.jobs * settings.cpus_per_run if local and settings.jobs else None)
    task = ray.remote(num_cpus=settings.cpus_per_run, num_gpus=settings.gpus_per_run)(run_job)
    pending, running = list(jobs), dict[Any, Job]()
    failures: list[str] = []
    with sigterm_as_exit():
        try:
            while pending or running:
                while pending and len(running) < (settings.jobs or len(jobs)):
                    job = pending.pop(0)
                    running[task.remote(job_command(job, settings), str(job.log_file), os.getcwd())] = job
                done, _ = ray.wait(list(running), num_returns=1)
                job = running.pop(done[0])
                failed = _outcome(ray, done[0], job, log)
                failures += [failed] if failed else []
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()
    return failures


def _outcome(ray: Any, ref: Any, job: Job, log: Log) -> str | None:
    try:
        code, lines = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker died (node lost, out of memory)
        return failure(job, f"its Ray task failed ({type(exc).__name__})", str(exc).splitlines()[-15:], log)
    if code != 0:
        return failure(job, exit_reason(code, lines), lines, log)
    log(f"== finished {job.label}")
    return None
