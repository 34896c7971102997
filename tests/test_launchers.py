"""Sweeps sent elsewhere: one sweep (seeds × a --grid axis, one integrator: the local sweeps of
tests/test_experiments.py vary integrators) through submitit's local
executor (SLURM's job files and pickling) and a two-worker local Ray instance gives the local
launcher's summary; a launcher without its extra, and a bad axis, are one line with exit code 2."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import submitit  # noqa: F401  here, not first under CliRunner: its logging keeps the stderr of its first import
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.apps.launch import Job, LaunchSettings, job_command
from pivf.core.data.generate import generate_dataset
from pivf.core.kernel.config import ExperimentConfig

SMALL = ["encoder.unet_base=4", "encoder.loc_hidden=32", "encoder.vel_hidden=16", "training.eval_every=1",
         "logging.log_every=2", "logging.checkpoint_every=1", "logging.tensorboard=false"]
SWEEP = ["--integrators", "leapfrog", "--seeds", "0,1", "--grid", "training.lr=0.001,0.003", "--epochs", "1"]
#: summary columns that a rerun reproduces exactly (wall time and throughput do not)
DETERMINISTIC = ("physics", "integrator", "training.lr", "seed", "pred_loss", "extrap_loss", "recons_loss",
                 "k_learned", "l_learned", "run")
RUNS = [f"spring/leapfrog/training.lr={lr}/seed{seed}" for lr in ("0.001", "0.003") for seed in (0, 1)]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    train, _ = generate_dataset("spring_color", tmp_path_factory.mktemp("data"), 20, 10, 10, seed=0)
    return train


def compare(out: Path, data_file: Path, *extra: str, sweep: list[str] = SWEEP) -> subprocess.CompletedProcess:
    """``pivf compare`` of a sweep in a fresh process."""
    sets = [arg for setting in SMALL for arg in ("--set", setting)]
    args = ["compare", *sweep, "--task", "spring_color", "--data", str(data_file), "--device", "cpu",
            "--batch-size", "10", *sets, "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pivf.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv") as handle:
        return {row["run"]: {key: row[key] for key in DETERMINISTIC} for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def local_summary(data_file, tmp_path_factory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("local") / "sweep"
    result = compare(out, data_file)
    assert result.returncode == 0, result.stderr
    return summary(out)


@pytest.mark.slow(seconds=25)
def test_the_local_sweep_keys_runs_by_every_axis(local_summary):
    assert sorted(local_summary) == sorted(RUNS)
    assert {row["training.lr"] for row in local_summary.values()} == {"0.001", "0.003"}
    lr_matters = local_summary[RUNS[0]]["pred_loss"] != local_summary[RUNS[2]]["pred_loss"]
    assert lr_matters, "the grid's runs trained the same thing"


@pytest.mark.slow(seconds=45)
def test_slurm_through_submitits_local_executor_gives_the_local_summary(local_summary, data_file, tmp_path):
    out = tmp_path / "sweep"
    result = compare(out, data_file, "--launcher", "slurm", "--submitit-cluster", "local", "--time", "20m")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"submitted {len(RUNS)} job(s) to local" in result.stdout
    assert summary(out) == local_summary
    assert len(list((out / ".submitit").glob("*/*_submitted.pkl"))) == len(RUNS)  # submitit's job files, one per run


@pytest.mark.slow(seconds=50)
def test_ray_with_two_local_workers_gives_the_local_summary(local_summary, data_file, tmp_path):
    out = tmp_path / "sweep"
    result = compare(out, data_file, "--launcher", "ray", "--jobs", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.stdout.count("== finished") == len(RUNS)
    assert summary(out) == local_summary


@pytest.mark.slow(seconds=20)
def test_a_failed_ray_run_is_told_with_its_log_and_the_other_is_summarised(local_summary, data_file, tmp_path):
    out = tmp_path / "sweep"
    (out / "spring" / "leapfrog" / "training.lr=0.003").mkdir(parents=True)
    (out / "spring" / "leapfrog" / "training.lr=0.003" / "seed1").write_text("a file where the run would go")
    sweep = ["--integrators", "leapfrog", "--seeds", "0,1", "--grid", "training.lr=0.003", "--epochs", "1"]
    result = compare(out, data_file, "--launcher", "ray", "--jobs", "2", sweep=sweep)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: run leapfrog/training.lr=0.003/seed1 failed: --overwrite: ")  # the run's own one-line error
    assert "== leapfrog/training.lr=0.003/seed1 failed (" in result.stdout  # its log's last lines follow
    finished = "spring/leapfrog/training.lr=0.003/seed0"
    assert summary(out) == {finished: local_summary[finished]}


@pytest.mark.parametrize("launcher, extra, package", [("slurm", "slurm", "submitit"), ("ray", "ray", "ray")])
def test_a_launcher_without_its_extra_is_one_line_naming_it(launcher, extra, package, data_file, tmp_path,
                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # what Python does when the package is not installed
    result = CliRunner().invoke(app, ["compare", "--task", "spring_color", "--data", str(data_file),
                                      "--out", str(tmp_path / "sweep"), "--launcher", launcher])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f'error: --launcher {launcher} needs {package}, which is not installed: pip install "pivf[{extra}]"']
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("args, expected", [
    (["--grid", "training.lr="], "--grid training.lr: the list is empty"),
    (["--grid", "data.task=spring/color"], "cannot name a folder"),
    (["--grid", "training.seed=1,2"], "training.seed is not a grid axis; it is set by --seeds"),
    (["--grid", "training.lr=0.1,0.1"], "'0.1' is listed twice"),
    (["--grid", "training.nope=1,2"], "nope"),
    (["--launcher", "slurm", "--nodes-per-run", "2", "--slurm-param", "bogus=1", "--submitit-cluster", "local"],
     "--slurm-param: unknown or pivf-set key 'bogus'"),
    (["--launcher", "ray", "--nodes-per-run", "2"], "--nodes-per-run: the ray launcher trains each run on one"),
    (["--partition", "gpu"], "--partition: only with --launcher slurm"),
])
def test_a_bad_axis_or_launcher_setting_is_one_line_and_writes_nothing(args, expected, data_file, tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["compare", "--task", "spring_color", "--data", str(data_file),
                                      "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not out.exists()


def test_the_sweep_file_gives_the_same_axes_as_flags(data_file, tmp_path):
    (tmp_path / "sweep.yaml").write_text("integrators: [euler]\nseeds: [3]\ngrid:\n  training.lr: [0.001]\n")
    result = CliRunner().invoke(app, ["compare", "--sweep", str(tmp_path / "sweep.yaml"), "--integrators", "rk4",
                                      "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 2 and "--integrators: also set by" in result.stderr
    assert not (tmp_path / "sweep").exists()


def job(overwrite: bool = False) -> Job:
    return Job("euler/seed0", ExperimentConfig(), overwrite, Path("/shared/sweep/.submitit/euler__seed0.yaml"),
               Path("/shared/sweep/.submitit/euler__seed0.log"))


def test_a_run_is_an_ordinary_pivf_train_and_several_gpus_start_torchrun():
    train = ["-m", "pivf.cli", "train", "--config", "/shared/sweep/.submitit/euler__seed0.yaml", "--quiet"]
    assert job_command(job(), LaunchSettings(gpus_per_run=1)) == [sys.executable, *train]
    assert job_command(job(True), LaunchSettings()) == [sys.executable, *train, "--overwrite"]
    assert job_command(job(), LaunchSettings(gpus_per_run=4)) == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4", "--standalone", *train]
    assert job_command(job(), LaunchSettings(gpus_per_run=8, nodes_per_run=2), node_rank=1, first_node="gpu07") == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=8", "--nnodes=2", "--node_rank=1",
        "--rdzv_backend=c10d", "--rdzv_endpoint=gpu07:29500", "--rdzv_id=euler__seed0", *train]
