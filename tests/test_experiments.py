"""Experiments users trust: integrator sweeps read back from TensorBoard, exact resume after SIGKILL,
the NaN guard, and two-process data-parallel training on CPU."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TINY = ["--task", "spring_color", "--device", "cpu", "--batch-size", "10",
        "--set", "data.n_train=40", "--set", "data.n_valid=10", "--set", "data.n_test=10",
        "--set", "encoder.unet_base=4", "--set", "encoder.loc_hidden=32", "--set", "encoder.vel_hidden=16",
        "--set", "training.eval_every=1", "--set", "logging.log_every=2", "--set", "logging.checkpoint_every=1"]


def pivf(*args: str, cache: Path | None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pivf.cli", *args] + (["--set", f"data.cache_dir={cache}"] if cache else [])
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data-cache")


def custom_scalar_charts(log_dir: Path) -> dict[str, list[str]]:
    """Chart title → tag patterns of the custom-scalars layout written into ``log_dir``'s event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar import layout_pb2

    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "custom_scalars__config__":
                    layout = layout_pb2.Layout.FromString(value.tensor.string_val[0])
                    return {chart.title: list(chart.multiline.tag)
                            for category in layout.category for chart in category.chart}
    return {}


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow(seconds=35)
def test_compare_lays_out_one_run_per_integrator_with_the_same_tags(tmp_path, cache):
    out = tmp_path / "sweep"
    result = pivf("compare", "--integrators", "euler,leapfrog,rk4", "--seeds", "0", "--epochs", "1",
                  "--out", str(out), *TINY, cache=cache)
    assert result.returncode == 0, result.stderr
    tags = {}
    for integrator in ("euler", "leapfrog", "rk4"):
        events = EventAccumulator(str(out / "spring" / integrator / "seed0"))
        events.Reload()
        tags[integrator] = set(events.Tags()["scalars"])
        assert {"train/loss", "valid/pred", "param/k", "param/l"} <= tags[integrator]
    assert tags["euler"] == tags["leapfrog"] == tags["rk4"]
    charts = custom_scalar_charts(out)
    assert list(charts)[:5] == ["recons", "pred", "extrap", "param/k", "param/l"]  # PAIG's headline, the spring's
    for title, patterns in charts.items():  # no empty chart: extrap exists on the test split only
        assert any(re.match(pattern, tag) for pattern in patterns for tag in tags["euler"]), title
    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["integrator"] for r in rows) == ["euler", "leapfrog", "rk4"]
    assert (out / "summary.md").read_text().count("| spring |") == 3 and (out / "summary.png").stat().st_size > 0
    rebuilt = pivf("compare", "--report", str(out), cache=None)
    assert rebuilt.returncode == 0 and "summary of 3 runs" in rebuilt.stdout


@pytest.mark.slow(seconds=60)
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path, cache):
    common = ["train", "--epochs", "4", "--out", str(tmp_path), *TINY]
    reference = pivf(*common, "--set", "logging.run_name=straight", "--quiet", cache=cache)
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pivf.cli", *common, "--set", "logging.run_name=killed",
                             "--set", f"data.cache_dir={cache}", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if last.is_file() and torch.load(last, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists()
    for checkpoint in (run_dir / "checkpoints").glob("*.pt"):  # whatever was killed, these are whole
        assert torch.load(checkpoint, weights_only=True)["epoch"] >= 2
    resumed = pivf("train", "--resume", str(run_dir), "--quiet", cache=None)  # its config.yaml names the cache
    assert resumed.returncode == 0, resumed.stderr
    straight, killed = _metrics(tmp_path / "straight"), _metrics(run_dir)
    for key in ("pred_loss", "extrap_loss", "recons_loss"):
        assert killed["eval"][key] == pytest.approx(straight["eval"][key], rel=1e-6)
    for name in ("k", "l"):
        assert killed["params"][name]["learned"] == pytest.approx(straight["params"][name]["learned"], rel=1e-6)
    assert killed["train"]["steps"] == straight["train"]["steps"]


@pytest.mark.slow(seconds=16)
def test_divergence_stops_cleanly_with_the_last_good_checkpoint_intact(tmp_path, cache):
    result = pivf("train", "--epochs", "3", "--lr", "1e9", "--out", str(tmp_path), "--set", "logging.run_name=nan",
                  "--set", "training.grad_clip=0", "--set", "training.optimizer=adam", *TINY, cache=cache)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "training diverged" in result.stderr and "Traceback" not in result.stderr
    assert "rolled back" in result.stdout
    state = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.slow(seconds=25)
def test_two_process_data_parallel_training_keeps_ranks_identical(tmp_path, cache):
    prepare = pivf("data", "generate", "spring_color", "--out", str(tmp_path / "data"), "--n-train", "40",
                   "--n-valid", "10", "--n-test", "10", cache=None)
    assert prepare.returncode == 0, prepare.stderr
    data = next((tmp_path / "data").glob("*sl12*.npz"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pivf.cli",
           "train", "--epochs", "2", "--data", str(data), "--out", str(tmp_path), "--set", "logging.run_name=ddp",
           "--quiet", *TINY]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(tmp_path / "ddp")
    assert metrics["train"]["processes"] == 2 and metrics["train"]["ranks_in_sync"] is True
