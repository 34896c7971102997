"""Trust in datasets: a dataset records what made it and is never silently replaced by another, a
run refuses data that changed since it trained, sizes that would fill a disk or memory are refused
before any work, no file name or sidecar reaches outside its dataset or states impossible physics,
and neither a killed generation nor two runs filling one cache leave anything behind or break it."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_trust import files_under, kill_generation_midway, one_line_exit_2, tiny_config
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.data.generate import ensure_dataset, generate_dataset
from pivf.core.data.limits import MAX_BYTES_ENV
from pivf.core.data.provenance import RECORD
from pivf.core.training.train import Trainer

SIZES = ["--n-train", "3", "--n-valid", "1", "--n-test", "2"]
TRAIN_FILE = "color_spring_vx8_vy8_sl12_r2_k4_e6.npz"


def generate(out: Path, *extra: str):
    return CliRunner().invoke(app, ["data", "generate", "spring_color", "--out", str(out), *SIZES, *extra])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny generated dataset folder (seed 0)."""
    folder = tmp_path_factory.mktemp("data") / "ds"
    generate_dataset("spring_color", folder, 10, 10, 10, seed=0)
    return folder


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A one-epoch run on ``dataset``."""
    out = tmp_path_factory.mktemp("runs")
    Trainer(tiny_config(dataset / TRAIN_FILE, out, "training.epochs=1", "logging.run_name=run"),
            log=lambda _msg: None).fit()
    return out / "run"


@pytest.fixture
def run(trained, dataset, tmp_path) -> Path:
    """A copy of the run trained on a copy of its dataset (``tmp_path / "ds"``)."""
    data = Path(shutil.copytree(dataset, tmp_path / "ds"))
    run_dir = Path(shutil.copytree(trained, tmp_path / "run"))
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace(str(dataset), str(data)))
    return run_dir


# --- every refusal: one line, exit code 2, nothing written or changed -----------------------------------

def different_set_there(work: Path) -> None:
    assert generate(work / "ds").exit_code == 0  # seed 0; the row asks for seed 1


def untracked_file_there(work: Path) -> None:
    (work / "ds").mkdir()
    (work / "ds" / TRAIN_FILE).write_bytes(b"the user's own file")


def forged_header(work: Path) -> None:
    """An .npz whose train_x header claims 10^12 sequences, followed by 100 bytes."""
    with zipfile.ZipFile(work / "forged.npz", "w") as archive:
        for key in ("train_x", "valid_x", "test_x"):
            with archive.open(f"{key}.npy", "w") as member:
                shape = (10**12 if key == "train_x" else 1, 12, 32, 32, 3)
                np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": shape})
                member.write(bytes(100))


def k_zero_in_name(work: Path) -> None:
    frames = np.full((2, 12, 32, 32, 3), 7, np.uint8)
    np.savez_compressed(work / "color_spring_vx8_vy8_sl12_r2_k0_e6.npz", train_x=frames, valid_x=frames,
                        test_x=frames)


def companion_outside(work: Path) -> None:
    assert generate(work / "ds").exit_code == 0
    sidecar = work / "ds" / TRAIN_FILE.replace(".npz", ".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "companion": "../../etc/passwd"}))


# (set-up in the working folder, args with {work}, environment, the line's telling part)
REFUSED = {
    "generate over another seed's set": (
        different_set_there, ["data", "generate", "spring_color", "--out", "{work}/ds", *SIZES, "--seed", "1"], {},
        f"{{work}}/ds/{TRAIN_FILE}: a different dataset is there already (seed 0 (asked: 1)); pass --overwrite "
        "to replace it, or choose another --out"),
    "generate over other sizes": (
        different_set_there, ["data", "generate", "spring_color", "--out", "{work}/ds", *SIZES, "--n-train", "4"], {},
        "a different dataset is there already (n_train 3 (asked: 4)); pass --overwrite"),
    "generate over a file pivf did not make": (
        untracked_file_there, ["data", "generate", "spring_color", "--out", "{work}/ds", *SIZES], {},
        f"a different dataset is there already ({TRAIN_FILE} has no sidecar; "),
    "n_train 1e26 in a config": (
        None, ["train", "--task", "spring_color", "--set", f"data.n_train={10**26}", "--set",
               "data.cache_dir={work}/cache", "--out", "{work}/out"], {},
        f"task 'spring_color' with n_train {10**26}, n_valid 100, n_test 100 sequences of 32×32×3 frames would "
        "take 3.43e+21 GiB uncompressed, over the limit of 8 GiB; lower the sequence counts or the frame size, "
        f"or raise the limit with {MAX_BYTES_ENV}=<bytes>"),
    "image_size 100000": (
        None, ["data", "generate", "spring_color", "--out", "{work}/ds", *SIZES, "--set", "image_size=100000"], {},
        "sequences of 100000×100000×3 frames would take 3.69e+03 GiB uncompressed, over the limit of 8 GiB"),
    "a lowered limit": (
        None, ["data", "generate", "spring_color", "--out", "{work}/ds", *SIZES], {MAX_BYTES_ENV: "100000"},
        "would take 396 KiB uncompressed, over the limit of 97.7 KiB"),
    "a limit that is no number": (
        None, ["data", "generate", "spring_color", "--out", "{work}/ds", *SIZES], {MAX_BYTES_ENV: "8G"},
        f"{MAX_BYTES_ENV}: expected a number of bytes, got '8G'"),
    "npz header claiming 10^12 sequences": (
        forged_header, ["data", "info", "{work}/forged.npz", "--task", "spring_color"], {},
        "{work}/forged.npz: 'train_x' claims shape (1000000000000, 12, 32, 32, 3) (3.43e+07 GiB) but holds "
        "100 bytes; the file is damaged"),
    "k=0 in a file name": (
        k_zero_in_name, ["data", "info", "{work}/color_spring_vx8_vy8_sl12_r2_k0_e6.npz"], {},
        "color_spring_vx8_vy8_sl12_r2_k0_e6.npz: its name gives parameters task 'spring_color' rejects "
        "(physics 'spring': k: Input should be greater than 0 (got 0.0))"),
    "sidecar companion ../../etc/passwd": (
        companion_outside, ["data", "info", "{work}/ds"], {},
        f"{{work}}/ds/{TRAIN_FILE.replace('.npz', '.json')}: companion: must be a plain .npz file name in the "
        "sidecar's folder (got '../../etc/passwd')"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_in_one_line_touching_nothing(case, tmp_path, monkeypatch):
    prepare, args, env, expected = REFUSED[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if prepare is not None:
        prepare(work)
    before = {path: path.read_bytes() if path.is_file() else None for path in work.rglob("*")}
    stamps = files_under(work)
    result = CliRunner().invoke(app, [arg.format(work=work) for arg in args], env=env)
    one_line_exit_2(result, expected.format(work=work))
    assert files_under(work) == stamps
    assert {path: path.read_bytes() if path.is_file() else None for path in work.rglob("*")} == before


# --- regenerating ------------------------------------------------------------------------------------------

def test_the_identical_set_is_kept_and_overwrite_replaces_another(tmp_path):
    out = tmp_path / "ds"
    assert generate(out).exit_code == 0
    stamps = files_under(out)
    again = generate(out)
    assert again.exit_code == 0 and "are there already, made by the same task, params, seed and sizes" in again.stdout
    assert files_under(out) == stamps
    old = (out / TRAIN_FILE).read_bytes()
    assert generate(out, "--seed", "1", "--overwrite").exit_code == 0
    sidecar = json.loads((out / TRAIN_FILE.replace(".npz", ".json")).read_text())
    assert sidecar["seed"] == 1 and sidecar["counts"] == {"train_x": 3, "valid_x": 1, "test_x": 2}
    assert (out / TRAIN_FILE).read_bytes() != old and sorted(p.name for p in out.iterdir()) == sorted(stamps)


# --- a run and the data it trained on ----------------------------------------------------------------------

def evaluate(run_dir: Path, *extra: str):
    return CliRunner().invoke(app, ["evaluate", str(run_dir), "--device", "cpu", *extra])


def test_a_run_records_the_sha256_of_its_files(run):
    record = json.loads((run / RECORD).read_text())
    data = run.parent / "ds"
    assert [name for name, _ in record["files"]] == [TRAIN_FILE, "color_spring_vx8_vy8_sl30_r2_k4_e6.npz"]
    for name, digest in record["files"]:
        assert json.loads((data / name).with_suffix(".json").read_text())["sha256"] == digest
    assert record["sequences"] == [10, 10, 10]
    assert evaluate(run).exit_code == 0


@pytest.mark.parametrize("command", [["evaluate"], ["rollout", "--steps", "2", "--out", "{tmp}/rollout.png"]])
def test_a_run_refuses_its_dataset_regenerated_unless_told(command, run, tmp_path):
    data = tmp_path / "ds"
    old = json.loads((data / TRAIN_FILE.replace(".npz", ".json")).read_text())["sha256"]
    generate_dataset("spring_color", data, 12, 10, 10, seed=1, overwrite=True)
    new = json.loads((data / TRAIN_FILE.replace(".npz", ".json")).read_text())["sha256"]
    stamps = files_under(tmp_path)
    args = [command[0], str(run), "--device", "cpu", *(arg.format(tmp=tmp_path) for arg in command[1:])]
    one_line_exit_2(CliRunner().invoke(app, args),
                    f"{data / TRAIN_FILE}: changed since run {run} trained on it (sha256 {old[:12]} then, "
                    f"{new[:12]} now; train/valid/test sequences 10/10/10 then, 12/10/10 now); "
                    "pass --accept-changed-data to use it anyway")
    assert files_under(tmp_path) == stamps
    accepted = CliRunner().invoke(app, [*args, "--accept-changed-data"])
    assert accepted.exit_code == 0, accepted.output
    assert f"note: {data / TRAIN_FILE}: changed since run" in accepted.stdout and "used anyway" in accepted.stdout


def test_a_run_without_a_record_is_not_checked(run, tmp_path):
    (run / RECORD).unlink()
    generate_dataset("spring_color", tmp_path / "ds", 10, 10, 10, seed=1, overwrite=True)
    result = evaluate(run)
    assert result.exit_code == 0, result.output
    assert "changed" not in result.stdout


# --- leftovers and the cache -------------------------------------------------------------------------------

def staging_of(pid: int, under: Path, prefix: str = ".generating-") -> Path:
    folder = under / f"{prefix}{socket.gethostname()}-{pid}-abc123"
    folder.mkdir(parents=True)
    (folder / "partial.npz").write_bytes(bytes(1000))
    return folder


@pytest.mark.slow(seconds=11)
def test_a_killed_generation_is_cleaned_up_by_the_next_one(tmp_path):
    out = tmp_path / "ds"
    pid = kill_generation_midway(out)
    left = list(out.glob(".generating-*"))
    assert len(left) == 1 and f"-{pid}-" in left[0].name and any(left[0].iterdir())
    live = staging_of(os.getpid(), out)  # a generation in progress, in this very process
    assert generate(out).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, TRAIN_FILE, TRAIN_FILE.replace(".npz", ".json"),
                                                            "color_spring_vx8_vy8_sl30_r2_k4_e6.npz",
                                                            "color_spring_vx8_vy8_sl30_r2_k4_e6.json"])
    assert (live / "partial.npz").stat().st_size == 1000


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_run_waits_for_the_cache_entry_and_uses_it(tmp_path):
    cache = tmp_path / "cache"
    train = ensure_dataset("spring_color", 3, 1, 2, seed=0, cache_dir=cache)
    entry = train.parent
    finished = Path(shutil.copytree(entry, tmp_path / "finished"))
    shutil.rmtree(entry)
    stale = staging_of(dead_pid(), cache, f".{entry.name}.")
    got: list[Path] = []
    with open(cache / f"{entry.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run filling the entry
        waiting = threading.Thread(target=lambda: got.append(ensure_dataset("spring_color", 3, 1, 2, seed=0,
                                                                            cache_dir=cache)))
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and not entry.exists() and stale.exists()
        shutil.copytree(finished, entry)
        stamps = files_under(entry)
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiting.join(60)
    assert got == [train] and files_under(entry) == stamps, "it used the finished entry, not a new one"
    assert stale.exists(), "the waiter returned as soon as the entry was there"
    (entry / train.with_suffix(".json").name).unlink()  # an incomplete entry: filled again, the leftover gone
    assert ensure_dataset("spring_color", 3, 1, 2, seed=0, cache_dir=cache) == train
    assert sorted(p.name for p in cache.iterdir()) == [entry.name, f"{entry.name}.lock"]
    assert (entry / train.name).read_bytes() == (finished / train.name).read_bytes()
