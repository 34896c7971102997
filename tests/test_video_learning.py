"""From an mp4 to a length in metres, as a user gets there: MuJoCo films a pendulum, the real codec
writes H.264 files, `pivf data import` reads them, `pivf train` learns, and the run reports the
rod's length from the timing. It runs `benchmarks/video_proof.py`, the script behind docs/RESULTS.md's
video tables, on a small scene and a step budget, so a slow machine is asked what a fast one is."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pivf.plugins.tasks.mujoco import mujoco_problem

PROOF = Path(__file__).resolve().parents[1] / "benchmarks" / "video_proof.py"


@pytest.mark.slow(seconds=200)
@pytest.mark.skipif(mujoco_problem() is not None, reason=f"MuJoCo: {mujoco_problem()}")
def test_the_pendulum_length_is_learned_from_an_imported_mp4(tmp_path):
    rows = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, str(PROOF), "single", "--only", "clean", "--objectives", "positions",
                             "--seeds", "0", "--steps", "300", "--size", "128", "--recordings", "10", "--seconds", "6",
                             "--work", str(tmp_path / "work"), "--json", str(rows)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    videos = sorted((tmp_path / "work" / "recordings" / "clean").glob("*.mp4"))
    assert len(videos) == 10 and (tmp_path / "work" / "imported" / "clean" / "import_preview.png").is_file()
    [row] = json.loads(rows.read_text())
    assert row["steps"] == 300
    error = row["errors"]["length_from_timing"]
    assert error < 0.10, f"length from the timing {row['values']['length_from_timing']:.3f} m, known 0.9 m"
