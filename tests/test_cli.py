"""User errors exit 2 with one line and no traceback; --help works everywhere."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pivf.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("args, expected", [
    (["config", "show", "--physics", "sprin"], "unknown physics 'sprin' (did you mean 'spring'?); available:"),
    (["config", "show", "--set", "physics.q=1"], "q: unknown field (allowed:"),
    (["config", "show", "--set", "training.lr=fast"], "training.lr: Input should be a valid number"),
    (["config", "show", "--config", "missing.yaml"], "config file not found: missing.yaml"),
    (["config", "show", "--set", "novalue"], "--set expects section.field=value"),
    (["config", "show", "--physics", "bouncing", "--integrator", "dopri5"], "cannot apply the hard constraints"),
    (["plugins", "--kind", "phisics"], "unknown kind 'phisics'; allowed: physics, integrator"),
    (["evaluate", "no-such-run"], "no-such-run is not a run directory (no config.yaml)"),
    (["rollout", "no-such-run"], "no-such-run is not a run directory (no config.yaml)"),
    (["train", "--device", "tpu9"], "training.device: unknown device 'tpu9'"),
    (["train", "--epoch", "3"], "No such option: --epoch (Possible options: --epochs) (see `pivf train --help`)"),
    (["train", "--epochs", "three"], "Invalid value for '--epochs'"),
])
def test_user_errors_are_one_line_exit_2(args, expected):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_malformed_file_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    result = runner.invoke(app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_console_script_exit_code_and_debug_traceback():
    cmd = [sys.executable, "-m", "pivf.cli", "config", "show", "--physics", "nope"]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and plain.stderr.startswith("error: ")
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_config_show_prints_resolved_config():
    result = runner.invoke(app, ["config", "show", "--task", "3bp_color", "--lr", "0.002",
                                 "--set", "integrator.substeps=7"])
    assert result.exit_code == 0, result.output
    assert "image_size: 36" in result.stdout and "lr: 0.002" in result.stdout and "substeps: 7" in result.stdout


@pytest.mark.parametrize("command", [[], ["plugins"], ["config", "show"], ["train"], ["evaluate"], ["rollout"],
                                     ["data", "generate"], ["data", "import"], ["compare"]])
def test_help(command):
    result = runner.invoke(app, command + ["--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout
