"""Trust in run folders: ``--overwrite`` deletes only a pivf run and nothing of the user's, one process
trains a run at a time, no run process outlives ``pivf compare``, and a run folder or checkpoint that
cannot be what pivf wrote is one line with exit code 2, never a result."""
from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_trust import MARKER as PAYLOAD_MARKER
from test_trust import Payload, one_line_exit_2, pivf_process, tiny, tiny_config
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.data.generate import generate_dataset
from pivf.core.training.runs import LOCK, MARKER, lock_run, new_run_dir, unlock_run
from pivf.core.training.train import train

#: a run that, once started, writes nothing more for far longer than a test looks at it
QUIET_RUN = ["--epochs", "100000", "--set", "training.eval_every=100000", "--set", "logging.checkpoint_every=100000"]
LINUX = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    train_file, _ = generate_dataset("spring_color", tmp_path_factory.mktemp("data"), 20, 10, 10, seed=0)
    return train_file


@pytest.fixture(scope="module")
def finished_run(data_file, tmp_path_factory) -> Path:
    """A one-epoch run trained in this process (its lock released as it finished); resumed, it writes
    nothing until it ends."""
    out = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    train(tiny_config(data_file, out, "training.epochs=1", "logging.run_name=run", "training.eval_every=100000",
                      "logging.checkpoint_every=100000"), log=lambda _msg: None)
    return out / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "out" / "run"))


def contents(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root`` by its bytes, and every link by its target: 'byte-identical' checks."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


# --- --overwrite deletes only a pivf run, and nothing of the user's --------------------------------------

def project_folder(out: Path, _run: Path) -> None:
    """The user's own experiment folder, named like the run: its config.yaml is the one trained from."""
    (out / "myexp" / "data").mkdir(parents=True)
    (out / "myexp" / "config.yaml").write_text("training:\n  lr: 0.001\n")
    (out / "myexp" / "NOTES.md").write_text("what I measured\n")
    (out / "myexp" / "data" / "measurements.csv").write_text("t,x\n0,1\n")


def notes_in_a_run(out: Path, run: Path) -> None:
    shutil.copytree(run, out / "myexp")
    (out / "myexp" / "NOTES.md").write_text("why this run matters\n")


def file_in_checkpoints(out: Path, run: Path) -> None:
    shutil.copytree(run, out / "myexp")
    (out / "myexp" / "checkpoints" / "mine.pt").write_bytes(b"a model of my own")


def notes_in_a_run_from_before_the_marker(out: Path, run: Path) -> None:
    notes_in_a_run(out, run)
    (out / "myexp" / MARKER).unlink()
    (out / "myexp" / LOCK).unlink()


def folder_without_checkpoints_from_before_the_marker(out: Path, run: Path) -> None:
    notes_in_a_run_from_before_the_marker(out, run)
    (out / "myexp" / "NOTES.md").unlink()
    shutil.rmtree(out / "myexp" / "checkpoints")


def symlinked_run(out: Path, run: Path) -> None:
    shutil.copytree(run, out.parent / "elsewhere")
    (out / "myexp").symlink_to(out.parent / "elsewhere")


def dangling_symlink(out: Path, _run: Path) -> None:
    (out / "myexp").symlink_to(out.parent / "nowhere")


# case → (what the user had in OUT/myexp, part of the one line)
NOT_TO_DELETE = {
    "a project folder with config.yaml": (project_folder, "is not a run directory (no .pivf-run marker"),
    "notes added to a run": (notes_in_a_run, "holds NOTES.md, which pivf did not write; not deleting"),
    "a file added to checkpoints/": (file_in_checkpoints, "holds checkpoints/mine.pt, which pivf did not write"),
    "notes in a run from before the marker": (notes_in_a_run_from_before_the_marker, "holds NOTES.md"),
    "config.yaml and metrics.json, no checkpoints/": (folder_without_checkpoints_from_before_the_marker,
                                                      "is not a run directory"),
    "a symlinked run name": (symlinked_run, "is a symbolic link; not following it"),
    "a dangling symlink": (dangling_symlink, "is a symbolic link; not following it"),
}


@pytest.mark.parametrize("case", NOT_TO_DELETE)
def test_overwrite_refuses_whatever_is_not_purely_a_pivf_run(case, data_file, finished_run, tmp_path):
    make, expected = NOT_TO_DELETE[case]
    out = tmp_path / "proj"
    out.mkdir()
    make(out, finished_run)
    before = contents(tmp_path)
    config = ["--config", str(out / "myexp" / "config.yaml")] if (out / "myexp" / "config.yaml").is_file() else []
    result = CliRunner().invoke(app, ["train", *config, *tiny(data_file), "--out", str(out),
                                      "--set", "logging.run_name=myexp", "--overwrite"])
    one_line_exit_2(result, f"--overwrite: {out / 'myexp'} {expected}")
    assert contents(tmp_path) == before


def test_overwrite_replaces_a_run_with_its_own_files_only(data_file, finished_run, tmp_path):
    """A marked run, and one from before the marker (config.yaml, metrics.json, checkpoints/, figures)."""
    for name, legacy in (("marked", False), ("legacy", True)):
        run_dir = Path(shutil.copytree(finished_run, tmp_path / name))
        if legacy:
            (run_dir / MARKER).unlink()
            (run_dir / LOCK).unlink()
        assert new_run_dir(tiny_config(data_file, tmp_path, f"logging.run_name={name}"), overwrite=True) == run_dir
        unlock_run(run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == sorted([MARKER, LOCK, "config.yaml"]), name


def test_a_refused_write_of_a_new_run_takes_back_the_folder_it_made(data_file, tmp_path, monkeypatch):
    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        new_run_dir(tiny_config(data_file, tmp_path / "out", "logging.run_name=r"))
    assert list((tmp_path / "out").iterdir()) == []


# --- one process trains a run at a time --------------------------------------------------------------------

def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the process ended before {what}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_pivf(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pivf.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow(seconds=9)
@pytest.mark.parametrize("holder", ["train", "resume"])
def test_a_run_being_trained_is_refused_to_a_second_process_until_that_one_dies(holder, data_file, run_copy):
    out = run_copy.parent
    if holder == "train":
        shutil.rmtree(run_copy)
        proc = start_pivf("train", *tiny(data_file, *QUIET_RUN), "--out", str(out), "--set", "logging.run_name=run")
        wait_for(lambda: (run_copy / "checkpoints" / "last.pt").is_file(), "the run's first checkpoint", proc)
    else:
        proc = start_pivf("train", "--resume", str(run_copy), "--epochs", "100000")
        wait_for(lambda: "epochs: 100000" in (run_copy / "config.yaml").read_text(), "the resumed config", proc)
    try:
        before = contents(out)
        busy = f"{run_copy} is being trained by another process (pid {proc.pid})"
        one_line_exit_2(CliRunner().invoke(app, ["train", *tiny(data_file), "--out", str(out),
                                                 "--set", "logging.run_name=run", "--overwrite"]), busy)
        one_line_exit_2(CliRunner().invoke(app, ["train", "--resume", str(run_copy), "--epochs", "2"]), busy)
        assert contents(out) == before and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lock_run(run_copy)  # the kernel released the killed process's lock
    unlock_run(run_copy)


# --- no run process outlives pivf compare ---------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Some thread of the process still runs. Its first thread is a zombie while the others still end
    (and hold its files, and so its lock); a zombie whose threads all ended is dead."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue
    return any(state not in ("Z", "X") for state in states)


@pytest.mark.slow(seconds=20)
@pytest.mark.skipif(not LINUX, reason="lists processes through /proc; the parent-death signal is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signalled_sweep_leaves_no_run_process(sig, data_file, tmp_path):
    sweep = tmp_path / "sweep"
    runs = [sweep / "spring" / name / "seed0" for name in ("euler", "leapfrog")]
    proc = start_pivf("compare", "--integrators", "euler,leapfrog", "--jobs", "2", "--out", str(sweep),
                      *tiny(data_file, *QUIET_RUN))
    children: list[int] = []
    try:
        wait_for(lambda: all((run / "checkpoints" / "last.pt").is_file() for run in runs), "both runs training", proc)
        children = children_of(proc.pid)
        assert len(children) == 2 and all(alive(child) for child in children)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGKILL)
        deadline = time.time() + 30
        while any(alive(child) for child in children) and time.time() < deadline:
            time.sleep(0.1)
        assert [child for child in children if alive(child)] == []
    finally:
        proc.kill()
        proc.wait()
        for child in filter(alive, children):  # a failed test leaves no process either
            os.kill(child, signal.SIGKILL)
    for run in runs:  # nothing holds them: a new sweep may train them again
        lock_run(run)
        unlock_run(run)


# --- a run folder or checkpoint that is not pivf's: one line, never a result ----------------------------

def edit_last(key: str, value: object) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        path = run / "checkpoints" / "last.pt"
        torch.save({**torch.load(path, weights_only=True), key: value}, path)
    return edit


def nan_weights(run: Path) -> None:
    path = run / "checkpoints" / "best.pt"
    state = torch.load(path, weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    torch.save(state, path)


def random_bytes(run: Path) -> None:
    (run / "checkpoints" / "best.pt").write_bytes(random.Random(0).randbytes(4096))


def empty_config(run: Path) -> None:
    (run / "config.yaml").write_text("")


def sparse_config(run: Path) -> None:
    (run / "config.yaml").write_text("training:\n  lr: 0.001\n")


def shuffled_beyond_the_data(run: Path) -> None:
    order = torch.randperm(20)
    order[3] = 99
    edit_last("order", order)(run)
    edit_last("epoch_step", 1)(run)


EVALUATE, RESUME = ["evaluate", "{run}", "--device", "cpu"], ["train", "--resume", "{run}", "--epochs", "2"]
# case → (spoil the run, command, part of the one line)
NOT_PIVFS = {
    "NaN weights": (nan_weights, EVALUATE, "best.pt: the checkpoint holds non-finite weights"),
    "random bytes": (random_bytes, EVALUATE, "best.pt: truncated or corrupt checkpoint"),
    "a string epoch": (edit_last("epoch", "3"), RESUME, "last.pt: damaged checkpoint, 'epoch' is '3'; a whole number"),
    "a negative step": (edit_last("step", -5), RESUME, "last.pt: damaged checkpoint, 'step' is -5"),
    "an epoch step beyond its epoch": (edit_last("epoch_step", 7), RESUME,
                                       "last.pt: damaged checkpoint, 'epoch_step' is 7 but an epoch has 2 steps"),
    "a shuffle order beyond the data": (shuffled_beyond_the_data, RESUME,
                                        "last.pt: damaged checkpoint, its shuffle order is not a permutation of the "
                                        "run's 20 training sequences"),
    "an empty config.yaml (evaluate)": (empty_config, EVALUATE, "config.yaml: not a pivf run config (it is empty)"),
    "an empty config.yaml (resume)": (empty_config, RESUME, "config.yaml: not a pivf run config (it is empty)"),
    "a config.yaml of one section": (sparse_config, EVALUATE, "not a pivf run config (no data, physics, integrator"),
}


@pytest.mark.parametrize("case", NOT_PIVFS)
def test_a_run_that_is_not_pivfs_is_one_line_and_no_result(case, run_copy):
    spoil, command, expected = NOT_PIVFS[case]
    spoil(run_copy)
    before = contents(run_copy)
    one_line_exit_2(CliRunner().invoke(app, [arg.replace("{run}", str(run_copy)) for arg in command]), expected)
    assert contents(run_copy) == before


def test_a_bare_pickle_is_refused_in_exactly_one_line(run_copy, tmp_path):
    """Under the console script, where torch's warnings reach stderr (pytest would capture them)."""
    marker = tmp_path / PAYLOAD_MARKER
    with open(run_copy / "checkpoints" / "best.pt", "wb") as handle:
        pickle.dump(Payload(marker), handle, protocol=4)
    one_line_exit_2(pivf_process("evaluate", str(run_copy), "--device", "cpu"), "best.pt: refused, it holds objects")
    assert not marker.exists()


# --- names that cannot be a folder: one line, nothing written ---------------------------------------------

NO_FOLDER = {
    "--out ''": (["--out", ""], "logging.out: empty"),
    "logging.out= by --set": (["--set", "logging.out="], "logging.out: empty"),
    "a NUL in the run name": (["--out", "out", "--set", "logging.run_name=a\0b"],
                              "logging.run_name: must be one folder name (no '/', '..', NUL character"),
    "a NUL in --out": (["--out", "o\0ut"], "logging.out: 'o\\x00ut' holds a NUL character"),
}


@pytest.mark.parametrize("case", NO_FOLDER)
def test_a_name_that_cannot_be_a_folder_is_one_line(case, data_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, expected = NO_FOLDER[case]
    one_line_exit_2(CliRunner().invoke(app, ["train", *tiny(data_file), *args]), expected)
    assert list(tmp_path.iterdir()) == []
