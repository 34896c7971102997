"""The GPU suite measures a GPU in one call: it must not rot on machines without one."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.sh"


@pytest.mark.slow(seconds=70)
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
    assert "| fast | 0 |" in (results / "recovery_spring_color.md").read_text()
    assert (results / "recovery_spring_color.json").stat().st_size > 0


def test_the_gpu_suite_refuses_an_unknown_argument_in_one_line():
    result = subprocess.run(["bash", str(SUITE), "--devic", "cpu"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "gpu_suite.sh: unknown argument '--devic' (allowed: --device DEVICE, --quick)"
