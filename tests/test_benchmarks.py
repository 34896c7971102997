"""The GPU suite measures a GPU in one call: it must not rot on machines without one."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.sh"


@pytest.mark.slow(seconds=105)
def test_the_gpu_suite_runs_end_to_end_on_the_cpu_path(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}  # the worker's share of the cores
    result = subprocess.run(["bash", str(SUITE), "--device", "cpu", "--quick"], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = tmp_path / "gpu_results"
    throughput = (results / "throughput.txt").read_text()
    rates = re.findall(r"task=(\w+) .*: ([\d.]+) sequences/s .*peak memory (\d+) MiB", throughput)
    assert [task for task, _, _ in rates] == ["spring_color", "spring_color", "pendulum"]
    assert all(float(rate) > 0 and int(memory) > 0 for _, rate, memory in rates)
    assert "separable / grid_sample speed" in throughput and "FAILED" not in throughput
    floor = (results / "floor.txt").read_text()
    assert re.findall(r"^step: task (\w+), recipe (\w+), batch 2,", floor, re.MULTILINE) == [
        ("spring_color", "fast"), ("spring_color", "paper"), ("pendulum", "fast"), ("pendulum", "paper")]
    assert "FAILED" not in floor and len(list(results.glob("floor-*.json"))) == 4
    assert "| fast | 0 |" in (results / "recovery_spring_color.md").read_text()
    assert (results / "recovery_spring_color.json").stat().st_size > 0


def test_the_gpu_suite_refuses_an_unknown_argument_in_one_line():
    result = subprocess.run(["bash", str(SUITE), "--devic", "cpu"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "gpu_suite.sh: unknown argument '--devic' (allowed: --device DEVICE, --quick)"


FLOOR = SUITE.parent / "floor.py"


def test_the_floor_counts_a_known_convolution_and_puts_every_part_under_the_measured_time(tmp_path):
    report_file = tmp_path / "floor.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(FLOOR), "--task", "spring_color", "--set", "training.recipe=paper",
                             "--device", "cpu", "--batch-size", "2", "--steps", "1", "--warmup", "1", "--passes", "2",
                             "--repeats", "3", "--cpu-time", "--json", str(report_file)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_file.read_text())
    images = 2 * report["config"]["frames"]
    first_conv = [k for k in report["kernels"]
                  if k["op"] == "convolution.default" and k["shapes"] == [[images, 3, 32, 32], [8, 3, 3, 3], [8]]]
    assert [k["flops"] for k in first_conv] == [2 * images * 8 * 32 * 32 * 3 * 3 * 3]  # the U-Net's first 3×3 conv
    parts = report["parts"]
    assert report["step_flops"] > 0 and sum(p["flops"] for p in parts.values()) == report["step_flops"]
    assert parts["encoder"]["flops"] > 0 and parts["decoder"]["flops"] > 0 and parts["optimiser"]["flops"] == 0
    assert report["operators"] == sum(p["ops"] for p in parts.values()) > 0
    for part in parts.values():
        assert 0 <= part["peak_floor"] <= part["seconds"]
    kernel_floor = sum(p["kernel_floor"] for p in parts.values())
    assert 0 < kernel_floor <= sum(p["seconds"] for p in parts.values())
    first_line = result.stdout.splitlines()[0]
    assert first_line.startswith("machine: ") and "1 threads" in first_line
    rows = [line.split(" |")[0] for line in result.stdout.splitlines() if line.startswith("| ") and "|---" not in line]
    assert rows[1:8] == ["| encoder", "| rollout", "| decoder", "| loss", "| optimiser", "| framework", "| step"]
