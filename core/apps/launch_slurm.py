"""The SLURM launcher (``pivf[slurm]``): the sweep's runs as one array job through submitit.

submitit pickles each job's call into ``OUT/.submitit`` (a folder the cluster's nodes share with
the submitting machine), where it also keeps each job's SLURM output; the jobs' configs and logs are
there too. ``--submitit-cluster local`` runs the same job files on this machine
(submitit's local executor), a dry run of the sweep before it goes to the cluster.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pivf.core.apps.launch import (
    Job,
    LaunchSettings,
    Log,
    exit_reason,
    failure,
    job_command,
    run_job,
    sigterm_as_exit,
    tail,
)
from pivf.core.kernel.errors import PivfUserError

__all__ = ["check", "job_folder", "launch", "train_in_job"]

#: seconds between looks at the jobs' states
POLL_S = 1.0
CLUSTERS = ("slurm", "local")
#: a job's time limit without --time (submitit's own default, 5 minutes, would end most trainings)
DEFAULT_TIME_MIN = 24 * 60
#: sbatch options pivf sets from its own flags, so --slurm-param may not set them
OWN_PARAMETERS = {"partition", "time", "cpus_per_task", "gpus_per_node", "nodes", "ntasks_per_node",
                  "array_parallelism", "job_name", "additional_parameters"}


def check(settings: LaunchSettings) -> None:
    """Refuse, before anything is written, what submitit would refuse later."""
    import submitit

    if settings.submitit_cluster not in CLUSTERS:
        raise PivfUserError(f"--submitit-cluster: unknown cluster '{settings.submitit_cluster}'; allowed: "
                            f"{', '.join(CLUSTERS)}")
    if settings.submitit_cluster == "slurm" and shutil.which("sbatch") is None:
        raise PivfUserError("--launcher slurm: no SLURM on this machine (sbatch not found); submit from a "
                            "cluster's login node, or --submitit-cluster local to run the jobs here")
    allowed = sorted(set(submitit.SlurmExecutor._valid_parameters()) - OWN_PARAMETERS)
    for key, _ in settings.slurm_params:
        if key not in allowed:
            raise PivfUserError(f"--slurm-param: unknown or pivf-set key '{key}'; allowed: {', '.join(allowed)}")


@contextmanager
def job_folder(out: Path) -> Iterator[Path]:
    """Under the sweep folder: the nodes must read the configs and the submitting machine the logs."""
    yield out / ".submitit"


def launch(jobs: list[Job], settings: LaunchSettings, folder: Path, log: Log) -> list[str]:
    """Submit every job as one array, wait for all of them; a failed one costs none of the others."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=settings.submitit_cluster)
    executor.update_parameters(**_parameters(settings))
    submitted = executor.map_array(train_in_job, jobs, [settings] * len(jobs), [os.getcwd()] * len(jobs))
    log(f"== submitted {len(jobs)} job(s) to {settings.submitit_cluster}: {submitted[0].job_id.split('_')[0]} "
        f"(logs in {folder})")
    failures: list[str] = []
    waiting = dict(zip(submitted, jobs, strict=True))
    with sigterm_as_exit():
        try:
            while waiting:
                for handle in [h for h in waiting if h.done()]:
                    job = waiting.pop(handle)
                    failed = _outcome(handle, job, log)
                    failures += [failed] if failed else []
                time.sleep(POLL_S)
        finally:
            for handle in waiting:  # Ctrl-C or SIGTERM: the sweep's jobs end with it
                handle.cancel(check=False)
    return failures


def train_in_job(job: Job, settings: LaunchSettings, cwd: str) -> tuple[int, list[str]]:
    """The job's body on its node: the run's command (on each node of a multi-node run, torchrun
    meeting the job's first node)."""
    import submitit

    environment = submitit.JobEnvironment()
    command = job_command(job, settings, node_rank=environment.node, first_node=environment.hostnames[0])
    log_file = job.log_file if environment.node == 0 else job.log_file.with_suffix(f".node{environment.node}.log")
    return run_job(command, str(log_file), cwd)


def _parameters(settings: LaunchSettings) -> dict[str, Any]:
    parameters: dict[str, Any] = {"name": "pivf-compare", "nodes": settings.nodes_per_run, "tasks_per_node": 1,
                                  "cpus_per_task": settings.cpus_per_run, "gpus_per_node": settings.gpus_per_run}
    parameters["timeout_min"] = settings.time_min or DEFAULT_TIME_MIN
    if settings.partition is not None:
        parameters["slurm_partition"] = settings.partition
    if settings.jobs is not None:
        parameters["slurm_array_parallelism"] = settings.jobs
    parameters.update({f"slurm_{key}": value for key, value in settings.slurm_params})
    return parameters


def _outcome(handle: Any, job: Job, log: Log) -> str | None:
    """None when the run finished; else its failure, told with its log's last lines (the run's own
    log, or SLURM's output when the job itself died: timed out, cancelled, out of memory)."""
    try:
        code, lines = handle.result()
    except Exception as exc:  # noqa: BLE001 - submitit's failures of the job, whatever the cluster said
        lines = tail(job.log_file) or [line for line in str(exc).splitlines() if line.strip()][-15:]
        return failure(job, f"job {handle.job_id} ended without a result ({type(exc).__name__})", lines, log)
    if code != 0:
        return failure(job, exit_reason(code, lines), lines, log)
    log(f"== finished {job.label}")
    return None
