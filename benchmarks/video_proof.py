"""From a video file to a constant in metres, end to end, through files a user could have recorded.

MuJoCo films a scene at 256 px through the camera layer (``data.nuisance``); each recording is written
as an H.264 mp4 with the real codec beside a ``known.json`` (the true constants in SI units and the
source's metres per pixel, as a ruler in the footage would give it). ``pivf data import`` crops,
averages down to 32 px, strides to the task preset's frame interval and deals whole recordings to
the splits; ``pivf train`` learns from the import; the run's ``physical`` report gives the constants
in SI units beside the known ones. Every step is the CLI a user runs.

    python benchmarks/video_proof.py single --objectives paig,positions --seeds 0,1,2
    python benchmarks/video_proof.py phone --lengths 0.45,0.9,1.5 --objectives positions --seeds 0,1,2
    python benchmarks/video_proof.py spring --objectives positions --seeds 0,1,2

``single``: the 0.9-m pendulum under each nuisance alone at its high severity; ``phone``: every
nuisance at its low severity at once (the ``phone`` profile), one pendulum length per row; ``spring``:
``mujoco_spring`` (k and the rest length) under the phone profile. Recordings and imports are kept in
``--work`` and reused; a run trains ``--steps`` optimiser steps (a step budget asks slow and fast
machines the same) and its wall time is reported beside it.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pivf.core.data.codec import encode_video
from pivf.core.data.generate import frames, make_task
from pivf.core.data.nuisance import NUISANCES

#: the source's frame side: the camera films at this size and the import averages it down to 32 px
SOURCE_SIZE = 256
#: the rate files are written at; the import's stride brings it to the preset's frame interval
FPS = 20.0
#: the quality the recordings are stored at (a nuisance of its own sets a lower one)
FILE_CRF = 18
#: a run succeeds when every judged constant is within this share of the known value
TOLERANCE = {"pendulum": 0.05, "spring": 0.10}


@dataclass(frozen=True)
class Scene:
    """One filmed setting: a task and its params under a nuisance, as recordings of ``seconds``."""

    name: str
    task: str
    params: dict[str, Any]
    nuisance: str | dict[str, str]
    judged: tuple[str, ...]  # the physical report's entries a run is scored on
    recordings: int = 12
    seconds: float = 8.0
    dt: float = 0.1  # the task preset's frame interval: stride = dt · FPS
    size: int = SOURCE_SIZE

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """The centred square the import keeps: 7/8 of the side (224 of 256 px, 7 source pixels per
        dataset pixel), as a user crops away the edges of a frame."""
        margin = self.size // 16
        return margin, margin, self.size - 2 * margin, self.size - 2 * margin


def pendulum(name: str, nuisance: str | dict[str, str], length: float = 0.9) -> Scene:
    return Scene(name, "mujoco_pendulum", {"rod_length": length}, nuisance, ("length_from_timing",))


def spring(name: str, nuisance: str | dict[str, str]) -> Scene:
    return Scene(name, "mujoco_spring", {}, nuisance, ("k", "l"), recordings=24, seconds=12.0, dt=0.3)


def known_values(scene: Scene) -> dict[str, float]:
    """The true constants in SI units under the physical report's names, and the source's scale."""
    task = make_task(scene.task, {**scene.params, "image_size": scene.size})
    truth, p = task.true_parameters(), task.params
    if scene.task == "mujoco_spring":
        return {"k": p.stiffness, "l": p.rest_length / 2, "metres_per_pixel": p.rest_length / 2 / truth["l"]}
    return {"length": p.rod_length, "gravity": p.gravity, "damping": p.damping,
            "metres_per_pixel": p.rod_length / truth["length"]}


def record(scene: Scene, folder: Path, seed: int = 0) -> list[Path]:
    """The scene's recordings as mp4 files in ``folder`` and its ``known.json``; kept when there."""
    videos = [folder / f"recording_{index:02d}.mp4" for index in range(scene.recordings)]
    if all(video.is_file() for video in videos) and (folder / "known.json").is_file():
        return videos
    folder.mkdir(parents=True, exist_ok=True)
    task = make_task(scene.task, {**scene.params, "image_size": scene.size, "supersample": 1, "dt": 1 / FPS,
                                  "nuisance": scene.nuisance})
    length = round(scene.seconds * FPS)
    written = iter(videos)
    for chunk in frames(task, scene.recordings, length, seed, stream=0):
        for video in chunk:
            encode_video(next(written), iter(video), FPS, crf=FILE_CRF)
    (folder / "known.json").write_text(json.dumps(known_values(scene), indent=2) + "\n")
    return videos


def import_videos(scene: Scene, videos: list[Path], out: Path) -> Path:
    """``pivf data import`` of the recordings into ``out``; kept when there."""
    if (out / "imported_train.npz").is_file():
        return out
    objects = make_task(scene.task).params.n_objects
    run([sys.executable, "-m", "pivf.cli", "data", "import", *map(str, videos), "--out", str(out),
         "--crop", ",".join(map(str, scene.crop)), "--size", "32", "--stride", str(round(scene.dt * FPS)),
         "--split-by", "recording", "--clip-length", "12", "--overlap", "11", "--test-length", "30",
         "--objects", str(objects), "--physics", make_task(scene.task).physics,
         "--known", str(videos[0].parent / "known.json")])
    return out


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-2000:]}")


def train(scene: Scene, data: Path, objective: str, seed: int, steps: int, runs: Path) -> dict[str, Any]:
    """``pivf train`` on the import; the run's metrics.json."""
    name = f"{scene.name}-{objective}-seed{seed}"
    run([sys.executable, "-m", "pivf.cli", "train", "--task", scene.task, "--data", str(data), "--seed", str(seed),
         "--out", str(runs), "--overwrite", "--quiet", "--objective", objective, "--set", f"logging.run_name={name}",
         "--set", f"training.steps={steps}", "--set", "logging.tensorboard=false"])
    return json.loads((runs / name / "metrics.json").read_text())


def score(scene: Scene, objective: str, seed: int, metrics: dict[str, Any]) -> dict[str, Any]:
    physical = metrics.get("physical", {})
    errors = {name: physical[name]["rel_error"] for name in scene.judged if "rel_error" in physical.get(name, {})}
    tolerance = TOLERANCE["spring" if scene.task == "mujoco_spring" else "pendulum"]
    return {"scene": scene.name, "objective": objective, "seed": seed, "steps": metrics["train"]["steps"],
            "wall_s": metrics["train"]["wall_s"],
            "values": {name: physical[name]["value"] for name in scene.judged if name in physical},
            "known": {name: physical[name].get("known") for name in scene.judged if name in physical},
            "errors": errors, "success": len(errors) == len(scene.judged) and max(errors.values()) <= tolerance}


def table(rows: list[dict[str, Any]]) -> str:
    judged = sorted({name for r in rows for name in r["values"]})
    head = ["scene", "objective", "seed", "steps", "wall s", *(f"{n} (known)" for n in judged),
            *(f"{n} err" for n in judged), "success"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        values = [f"{r['values'][n]:.4g} ({r['known'][n]:g})" if n in r["values"] else "–" for n in judged]
        errors = [f"{100 * r['errors'][n]:.1f} %" if n in r["errors"] else "–" for n in judged]
        lines.append("| " + " | ".join([r["scene"], r["objective"], str(r["seed"]), str(r["steps"]),
                                        f"{r['wall_s']:.0f}", *values, *errors,
                                        "yes" if r["success"] else "no"]) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per scene and objective: seeds that succeeded, and the median worst error."""
    lines = []
    for key in sorted({(r["scene"], r["objective"]) for r in rows}):
        mine = [r for r in rows if (r["scene"], r["objective"]) == key]
        worst = [max(r["errors"].values(), default=math.inf) for r in mine]
        lines.append(f"{key[0]} / {key[1]}: {sum(r['success'] for r in mine)}/{len(mine)} seeds within tolerance; "
                     f"worst error median {100 * statistics.median(worst):.1f} %")
    return lines


def scenes(kind: str, lengths: list[float]) -> list[Scene]:
    if kind == "single":
        return [pendulum("clean", "none"), *(pendulum(name, {name: "high"}) for name in NUISANCES)]
    if kind == "phone":
        return [pendulum(f"phone-L{length:g}", "phone", length) for length in lengths]
    return [spring("spring-phone", "phone")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("single", "phone", "spring"))
    parser.add_argument("--objectives", default="positions", help="comma-separated objectives (paig, positions)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--lengths", default="0.45,0.9,1.5", help="phone: the pendulum lengths in metres")
    parser.add_argument("--only", default=None, help="comma-separated scene names to run (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: per objective)")
    parser.add_argument("--work", type=Path, default=Path("runs/video_proof"), help="recordings, imports, runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--prepare-only", action="store_true", help="record and import, train nothing")
    parser.add_argument("--size", type=int, default=SOURCE_SIZE, help="the recordings' frame side in pixels")
    parser.add_argument("--recordings", type=int, default=None, help="recordings per scene (default: the scene's)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each recording (default: the scene's)")
    args = parser.parse_args()
    chosen = scenes(args.kind, [float(x) for x in args.lengths.split(",")])
    if args.only:
        chosen = [scene for scene in chosen if scene.name in args.only.split(",")]
    chosen = [replace(scene, size=args.size, recordings=args.recordings or scene.recordings,
                      seconds=args.seconds or scene.seconds) for scene in chosen]
    rows = []
    for scene in chosen:
        videos = record(scene, args.work / "recordings" / scene.name)
        data = import_videos(scene, videos, args.work / "imported" / scene.name)
        for objective in [] if args.prepare_only else args.objectives.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                steps = args.steps or STEPS[objective]
                rows.append(score(scene, objective, seed, train(scene, data, objective, seed, steps,
                                                                args.work / "runs")))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    print("\n".join(summary(rows)))


#: optimiser steps per run by objective: what one run does in 6 minutes on an idle 2-core CPU
STEPS = {"paig": 900, "positions": 900}

if __name__ == "__main__":
    main()
