"""Trust: a checkpoint cannot run code, a run or a dataset is never silently overwritten or half
written, a sweep leaves no process behind, every bad input is one line with exit code 2 and writes
nothing, and ``--max-time`` stops a run that still writes itself."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

import pivf.core.training.runs
from pivf.cli.main import app
from pivf.cli.options import parse_duration
from pivf.core.data.generate import generate_dataset
from pivf.core.kernel.config import ExperimentConfig, resolve_config
from pivf.core.kernel.registry import DISABLE_AUTOLOAD_ENV, registry
from pivf.core.training.runs import new_run_dir
from pivf.core.training.train import Trainer, resume

SMALL = ["encoder.unet_base=4", "encoder.loc_hidden=32", "encoder.vel_hidden=16", "training.eval_every=1",
         "logging.log_every=2", "logging.checkpoint_every=1", "logging.tensorboard=false"]
MARKER = "payload-ran"


# --- shared inputs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """A small generated train file (20 training sequences), with its test file beside it."""
    train, _ = generate_dataset("spring_color", tmp_path_factory.mktemp("data"), 20, 10, 10, seed=0)
    return train


def tiny(data_file: Path, *extra: str) -> list[str]:
    """The flags of a tiny experiment on ``data_file``."""
    sets = [arg for setting in SMALL for arg in ("--set", setting)]
    return ["--task", "spring_color", "--data", str(data_file), "--device", "cpu", "--batch-size", "10", *sets, *extra]


def tiny_config(data_file: Path, out: Path, *overrides: str) -> ExperimentConfig:
    return resolve_config(task="spring_color", overrides=SMALL + [
        f"data.path={data_file}", "training.device=cpu", "training.batch_size=10", f"logging.out={out}", *overrides])


@pytest.fixture(scope="module")
def finished_run(data_file, tmp_path_factory) -> Path:
    """A one-epoch run (TensorBoard on), trained in this process."""
    out = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    Trainer(tiny_config(data_file, out, "training.epochs=1", "logging.run_name=run", "logging.tensorboard=true"),
            log=lambda _msg: None).fit()
    return out / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def one_line_exit_2(result, expected: str) -> None:
    """Exit code 2, one line on stderr starting ``error:`` and holding ``expected``, no traceback; for
    a CliRunner result or a finished process."""
    stderr = result.stderr
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], stderr
    assert "Traceback" not in stderr and len(lines[0]) < 700


def pivf_process(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pivf.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kwargs)


# --- checkpoints cannot run code ---------------------------------------------------------------------

class Payload:
    """Unpickling this creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def planted(path: Path, marker: Path) -> None:
    """A genuine checkpoint with one extra key holding the payload."""
    state = torch.load(path, weights_only=True)
    torch.save({**state, "extra": Payload(marker)}, path)


CHECKPOINTS = {
    "payload in a genuine checkpoint": (planted, "refused, it holds objects other than tensors"),
    "payload alone": (lambda path, marker: torch.save(Payload(marker), path), "refused"),
    "truncated": (lambda path, _: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]), "truncated or "
                                                                                                   "corrupt"),
    "empty": (lambda path, _: path.write_bytes(b""), "truncated or corrupt"),
    "not a checkpoint": (lambda path, _: torch.save([1, 2, 3], path), "not a pivf checkpoint"),
}
COMMANDS = {"evaluate": ["evaluate", "{run}", "--device", "cpu"],
            "rollout": ["rollout", "{run}", "--device", "cpu", "--steps", "2"],
            "resume": ["train", "--resume", "{run}", "--device", "cpu"]}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CHECKPOINTS)
def test_bad_checkpoint_is_refused_in_one_line_and_runs_nothing(case, command, run_copy, tmp_path):
    spoil, expected = CHECKPOINTS[case]
    marker = tmp_path / MARKER
    name = "last" if command == "resume" else "best"
    spoil(run_copy / "checkpoints" / f"{name}.pt", marker)
    before = files_under(run_copy)
    result = CliRunner().invoke(app, [a.replace("{run}", str(run_copy)) for a in COMMANDS[command]])
    one_line_exit_2(result, expected)
    assert not marker.exists()
    assert files_under(run_copy) == before


def test_the_planted_payload_is_live(run_copy, tmp_path):
    """The payload above does run under a plain unpickler, so its marker's absence means something."""
    marker = tmp_path / MARKER
    planted(run_copy / "checkpoints" / "best.pt", marker)
    torch.load(run_copy / "checkpoints" / "best.pt", weights_only=False)
    assert marker.exists()


def test_empty_checkpoint_under_the_console_script_is_not_a_bare_abort(run_copy):
    (run_copy / "checkpoints" / "best.pt").write_bytes(b"")
    plain = pivf_process("evaluate", str(run_copy), "--device", "cpu")
    one_line_exit_2(plain, "truncated or corrupt")
    debug = pivf_process("--debug", "evaluate", str(run_copy), "--device", "cpu")
    assert "Traceback" in debug.stderr and "CheckpointError" in debug.stderr and "Aborted" not in debug.stderr


def test_saved_checkpoints_hold_only_what_weights_only_loads(finished_run):
    for name in ("best", "last"):
        state = torch.load(finished_run / "checkpoints" / f"{name}.pt", weights_only=True)
        assert {"model", "optimizer", "rng", "generator", "epoch", "step"} <= set(state)


# --- run directories ----------------------------------------------------------------------------------

def test_runs_started_in_the_same_second_get_their_own_directories(data_file, tmp_path, monkeypatch):
    monkeypatch.setattr(pivf.core.training.runs.time, "strftime", lambda _fmt: "20250101-000000")
    config = tiny_config(data_file, tmp_path)
    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(new_run_dir(config))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all((d / "config.yaml").is_file() for d in made)


def test_a_run_name_in_use_is_an_error_and_overwrite_clears_the_old_run(data_file, tmp_path):
    config = tiny_config(data_file, tmp_path, "logging.run_name=same")
    run_dir = new_run_dir(config)
    stale = run_dir / "checkpoints" / "best.pt"
    stale.parent.mkdir()
    stale.write_bytes(b"old model")
    before = files_under(tmp_path)
    taken = CliRunner().invoke(app, ["train", *tiny(data_file), "--out", str(tmp_path),
                                     "--set", "logging.run_name=same"])
    one_line_exit_2(taken, "already exists; choose another name, or pass --overwrite")
    assert files_under(tmp_path) == before
    assert new_run_dir(config, overwrite=True) == run_dir and not stale.exists()


def test_overwrite_leaves_a_folder_that_is_not_a_run_alone(data_file, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = CliRunner().invoke(app, ["train", *tiny(data_file), "--out", str(tmp_path),
                                      "--set", "logging.run_name=mine", "--overwrite"])
    one_line_exit_2(result, "is not a run directory")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_config_yaml_records_the_sizes_of_the_dataset_used(finished_run):
    text = (finished_run / "config.yaml").read_text()
    assert "n_train: 20" in text and "n_valid: 10" in text and "n_test: 10" in text


def test_resume_extends_the_run_and_keeps_the_points_at_its_checkpoint(run_copy):
    resume(run_copy, log=lambda _msg: None, epochs=2)
    events = EventAccumulator(str(run_copy))
    events.Reload()
    assert [s.step for s in events.Scalars("valid/loss")] == [2, 4]  # the epoch-1 point survives the purge
    assert "epochs: 2" in (run_copy / "config.yaml").read_text()
    assert json.loads((run_copy / "metrics.json").read_text())["train"]["epochs_done"] == 2


# --- datasets: complete or absent ---------------------------------------------------------------------

def kill_generation_midway(out: Path) -> int:
    """Run `pivf data generate` into ``out`` and SIGKILL it once the train file is written (the long
    test file is still being made); returns its pid."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pivf.cli", "data", "generate", "spring_color", "--out", str(out),
                             "--n-train", "10", "--n-valid", "5", "--n-test", "600"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not any(out.glob(".generating-*/*.npz")) and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "generation finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def test_killed_generation_leaves_no_dataset(tmp_path):
    out = tmp_path / "data"
    kill_generation_midway(out)
    assert not list(out.glob("*.npz")) and not list(out.glob("*.json"))
    one_line_exit_2(CliRunner().invoke(app, ["data", "info", str(out)]), "no .npz dataset in this folder")


@pytest.mark.parametrize("lost", ["test file", "test sidecar", "train file"])
def test_a_dataset_missing_a_member_is_refused_naming_it(lost, data_file, tmp_path):
    folder = Path(shutil.copytree(data_file.parent, tmp_path / "data"))
    train = folder / data_file.name
    test = next(p for p in folder.glob("*.npz") if p != train)
    victim = {"test file": test, "test sidecar": test.with_suffix(".json"), "train file": train}[lost]
    victim.unlink()
    for args in (["data", "info", str(folder)], ["train", *tiny(folder), "--out", str(tmp_path / "out")]):
        one_line_exit_2(CliRunner().invoke(app, args), f"incomplete dataset, {victim.name}")
    assert not (tmp_path / "out").exists()


# --- compare: no orphans, finished runs skipped ----------------------------------------------------------

def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow(seconds=18)
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to list processes")
def test_a_failed_sweep_run_stops_the_others_and_leaves_no_process(data_file, tmp_path):
    out = tmp_path / "sweep"
    (out / "spring" / "leapfrog").mkdir(parents=True)
    (out / "spring" / "leapfrog" / "seed0").write_text("a file where the run directory would go")
    result = pivf_process("compare", "--integrators", "euler,leapfrog", "--jobs", "2", "--epochs", "100000",
                          "--out", str(out), *tiny(data_file))
    one_line_exit_2(result, "run leapfrog/seed0 failed")
    assert "stopping 1 other run" in result.stdout and "no run finished" in result.stdout
    assert processes_mentioning(str(tmp_path)) == []


def test_compare_skips_finished_runs_and_says_so(finished_run, data_file, tmp_path):
    run_dir = tmp_path / "sweep" / "spring" / "euler" / "seed0"
    shutil.copytree(finished_run, run_dir)
    before = (run_dir / "metrics.json").read_text()
    result = CliRunner().invoke(app, ["compare", "--integrators", "euler", "--out", str(tmp_path / "sweep"),
                                      *tiny(data_file)])
    assert result.exit_code == 0, result.output
    assert "skipping euler/seed0: finished already" in result.stdout and "summary of 1 runs" in result.stdout
    assert (run_dir / "metrics.json").read_text() == before


# --- every bad input: one line, exit 2, nothing written --------------------------------------------------

def not_utf8(work: Path, _data: Path, _run: Path) -> Path:
    (work / "latin1.yaml").write_bytes("training:\n  lr: 0.001 # \xe9t\xe9\n".encode("latin-1"))
    return work / "latin1.yaml"


def alias_bomb(work: Path, _data: Path, _run: Path) -> Path:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcde", "bcdef", strict=True)]
    (work / "bomb.yaml").write_text("\n".join(lines) + "\ntraining: {lr: *f}\n")
    return work / "bomb.yaml"


def bad_sidecar(work: Path, data_file: Path, _run: Path) -> Path:
    folder = Path(shutil.copytree(data_file.parent, work / "data"))
    (folder / data_file.with_suffix(".json").name).write_bytes(b"\xff\xfe not json")
    return folder


def corrupt_metrics(work: Path, _data: Path, run: Path) -> Path:
    run_dir = Path(shutil.copytree(run, work / "sweep" / "spring" / "euler" / "seed0"))
    (run_dir / "metrics.json").write_text('{"physics": "spring"')
    return work / "sweep"


# (args, part of the message): TINY stands for a tiny experiment's flags (later flags win over them),
# {data}, {run} and {work} for the dataset file, a finished run and the working folder, and a
# function for the input it makes in the working folder
BAD_INPUTS = {
    "infinite --lr": (["train", "TINY", "--lr", "inf"], "training.lr: must be a finite number, got inf"),
    "infinite lr by --set": (["train", "TINY", "--set", "training.lr=.inf"], "training.lr: must be a finite number"),
    "infinite dt": (["train", "TINY", "--set", "data.dt=.inf"], "data.dt: must be a finite number"),
    "infinite plugin param": (["config", "show", "--set", "physics.k=.inf"], "physics.k: must be a finite number"),
    "NaN plugin param": (["train", "TINY", "--set", "physics.k=.nan"], "physics.k: must be a finite number"),
    "huge seed": (["train", "TINY", "--seed", "99999999999999999999"], "training.seed: Input should be less than"),
    "negative data seed": (["train", "TINY", "--set", "data.seed=-1"], "data.seed: Input should be greater than"),
    "config not UTF-8": (["train", "TINY", "--config", not_utf8], "is not UTF-8 text"),
    "YAML alias bomb": (["config", "show", "--config", alias_bomb], "more than 10000 values"),
    "unknown task with --data": (["train", "TINY", "--task", "nosuchtask"], "data.task: unknown task 'nosuchtask'"),
    "run name with ..": (["train", "TINY", "--set", "logging.run_name=../escaped"], "logging.run_name:"),
    "absolute run name": (["train", "TINY", "--set", "logging.run_name=/tmp/escaped"], "logging.run_name:"),
    "bad --max-time": (["train", "TINY", "--max-time", "ten minutes"], "--max-time: expected a positive duration"),
    "zero --max-time": (["train", "TINY", "--max-time", "0s"], "--max-time: expected a positive duration"),
    "unwritable --out": (["train", "TINY", "--out", "/sys/pivf-out"], "logging.out: cannot create the folder"),
    "--out is a file": (["train", "TINY", "--out", "{data}"], "exists and is not a folder"),
    "unwritable cache": (["train", "--task", "spring_color", "--out", "{work}/out", "--set",
                          "data.cache_dir=/sys/pivf-cache"], "data.cache_dir: cannot create the folder"),
    "unreadable sidecar": (["train", "TINY", "--data", bad_sidecar], "not valid JSON"),
    "generate into /sys": (["data", "generate", "spring_color", "--out", "/sys/pivf-data"], "--out: cannot create"),
    "generate into a file": (["data", "generate", "spring_color", "--out", "{data}"], "exists and is not a folder"),
    "rollout --out a folder": (["rollout", "{run}", "--out", "{work}"], "is a folder; name the PNG file"),
    "corrupt metrics.json": (["compare", "--report", corrupt_metrics], "not a pivf metrics file"),
    "integrator listed twice": (["compare", "TINY", "--integrators", "euler,euler", "--jobs", "2"], "'euler' is "
                                                                                                    "listed twice"),
    "resume with --lr": (["train", "--resume", "{run}", "--lr", "0.1"], "--resume: --lr cannot be used"),
    "resume with fewer epochs": (["train", "--resume", "{run}", "--epochs", "0"], "has already trained 1 epochs"),
}


def expand(args: list, work: Path, data_file: Path, run: Path) -> list[str]:
    expanded: list[str] = []
    for arg in args:
        if arg == "TINY":
            expanded += tiny(data_file, "--out", str(work / "out"))
        elif callable(arg):
            expanded.append(str(arg(work, data_file, run)))
        else:
            expanded.append(arg.format(data=data_file, run=run, work=work))
    return expanded


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, data_file, run_copy, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args, expected = BAD_INPUTS[case]
    args = expand(args, work, data_file, run_copy)
    before, run_before = files_under(work), files_under(run_copy)
    one_line_exit_2(CliRunner().invoke(app, args), expected)
    assert files_under(work) == before and files_under(run_copy) == run_before
    assert not (work / "out").exists()


def test_a_full_disk_is_one_line_and_leaves_no_run(data_file, tmp_path, monkeypatch):
    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    result = CliRunner().invoke(app, ["train", *tiny(data_file), "--out", str(tmp_path / "out")])
    one_line_exit_2(result, "No space left on device: ")
    assert files_under(tmp_path) == {}


def test_a_dist_info_calling_itself_pivf_is_not_built_in(install_distribution, tmp_path, monkeypatch):
    marker = tmp_path / MARKER
    install_distribution("pivf", {"impostor": f"open({str(marker)!r}, 'w').close()\n"}, {"impostor": "impostor"})
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert "spring" in registry().names("physics") and not marker.exists()


# --- --max-time -------------------------------------------------------------------------------------

def test_max_time_stops_the_run_which_still_writes_itself(data_file, tmp_path):
    config = tiny_config(data_file, tmp_path, "training.epochs=100000", "training.max_time=1.5",
                         "logging.run_name=timed")
    started = time.perf_counter()
    metrics = Trainer(config, log=lambda _msg: None).fit()
    assert time.perf_counter() - started < 60
    train = metrics["train"]
    assert train["stopped"] == "max_time" and train["steps"] > 0 and train["epochs_done"] < 100000
    assert json.loads((tmp_path / "timed" / "metrics.json").read_text())["train"]["stopped"] == "max_time"
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "rollouts.png"):
        assert (tmp_path / "timed" / name).is_file(), name
    assert torch.load(tmp_path / "timed" / "checkpoints" / "last.pt", weights_only=True)["step"] == train["steps"]


def test_a_callers_target_stops_the_run_at_the_validation_that_meets_it(data_file, tmp_path):
    config = tiny_config(data_file, tmp_path, "training.epochs=50", "training.eval_every=1", "logging.run_name=target")
    asked: list[int] = []

    def third_validation(point: dict) -> bool:
        asked.append(point["epoch"])
        return len(asked) == 3

    metrics = Trainer(config, log=lambda _msg: None, stop_when=third_validation).fit()
    assert asked == [1, 2, 3]
    assert metrics["train"]["stopped"] == "target" and metrics["train"]["epochs_done"] == 3
    assert json.loads((tmp_path / "target" / "metrics.json").read_text())["eval"]["split"] == "test"


def test_a_run_without_a_budget_says_it_stopped_on_its_epochs(finished_run):
    train = json.loads((finished_run / "metrics.json").read_text())["train"]
    assert train["stopped"] == "epochs" and train["epochs_done"] == 1 and train["max_time_s"] is None


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2h", 7200), ("1.5m", 90),
                                           ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
