"""Parameter recovery from pixels: train the whole pipeline on one task for several seeds and score it.

For each seed (and each recipe asked for) a full run trains from pixels, stops at its epoch count or
at ``--max-time``, and is evaluated on the test split. One table comes out: wall time, steps, test
losses, each learned parameter against the truth, whether the run succeeded and how long it took to
succeed (the first validation at which every criterion held); then one summary line per recipe.

Success criteria come from the task (the original thresholds: objects found when recons < 1.5,
dynamics learned when pred < 3.0, 30 for the 64-px digits) and can be set with ``--recons-below``,
``--pred-below`` and ``--param-tol`` for any other data.

    python benchmarks/recovery.py spring_color --seeds 0,1,2,3,4 --max-time 10m
    python benchmarks/recovery.py spring_color --seeds 0,1,2 --recipes fast,paper --max-time 10m
    python benchmarks/recovery.py spring_color --data their_spring_files/ --seeds 0,1,2
    python benchmarks/recovery.py 3bp_color --max-time 20m --stop-at-success

``--stop-at-success`` ends a run at the first validation that meets the criteria; its test row is then
the model at that moment (the time-to-success column is when it stopped).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pivf.cli.options import parse_duration
from pivf.core.kernel.config import resolve_config
from pivf.core.kernel.errors import ConfigError, PivfUserError
from pivf.core.training.train import Trainer


@dataclass(frozen=True)
class Criteria:
    """A run succeeds when every given bound holds on the test split."""

    recons_below: float | None = 1.5
    pred_below: float | None = 3.0
    param_tol: float | None = 0.05
    #: the parameters ``param_tol`` applies to; None: every learned one with a truth
    judged: tuple[str, ...] | None = None

    def holds(self, losses: dict[str, float], params: dict[str, dict[str, float]]) -> bool:
        if self.recons_below is not None and not losses.get("recons_loss", float("inf")) < self.recons_below:
            return False
        if self.pred_below is not None and not losses.get("pred_loss", float("inf")) < self.pred_below:
            return False
        return self.param_tol is None or all(error <= self.param_tol for error in self.errors(params))

    def errors(self, params: dict[str, dict[str, float]]) -> list[float]:
        """Relative errors of the judged parameters."""
        return [entry["rel_error"] for name, entry in params.items()
                if "rel_error" in entry and (self.judged is None or name in self.judged)]


#: the issue's targets; any other task starts from the defaults of ``Criteria``
TASK_CRITERIA: dict[str, Criteria] = {
    "spring_color": Criteria(1.5, 3.0, 0.05),
    "spring_color_half": Criteria(1.5, 3.0, 0.05),
    "bouncing_balls": Criteria(1.5, 3.0, None),
    "3bp_color": Criteria(None, None, 0.05),
    "mnist_spring_color": Criteria(None, 30.0, 0.10),
    # the target is on what the physics means, g/L and b; the pivot and the rod in pixels are
    # reported beside them (a relative error of an image coordinate depends on where the origin is)
    "mujoco_pendulum": Criteria(1.5, 3.0, 0.05, ("g_over_l", "damping")),
    "mujoco_spring": Criteria(1.5, 3.0, 0.05),
}


def time_to_success(history: list[dict[str, Any]], criteria: Criteria) -> float | None:
    """Wall seconds at the first validation where the criteria held, from a run's history."""
    for point in history:
        if criteria.holds(point["valid"], point["params"]):
            return point["wall_s"]
    return None


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_seed(task: str, recipe: str, seed: int, args: argparse.Namespace, criteria: Criteria) -> dict[str, Any]:
    flags = {"training.seed": seed, "training.device": args.device, "training.recipe": recipe,
             "training.max_time": args.max_time, "data.path": args.data, "logging.out": str(args.out / recipe),
             "logging.tensorboard": False, "logging.run_name": f"{task}-seed{seed}"}
    config = resolve_config(task=task, flags=flags, overrides=args.set)
    stop_when = (lambda point: criteria.holds(point["valid"], point["params"])) if args.stop_at_success else None
    return Trainer(config, log=lambda _msg: None, quiet=True, overwrite=True, stop_when=stop_when).fit()


def row(recipe: str, seed: int, metrics: dict[str, Any], criteria: Criteria) -> dict[str, Any]:
    losses, params = metrics["eval"], metrics["params"]
    return {"recipe": recipe, "seed": seed, "wall_s": metrics["train"]["wall_s"], "steps": metrics["train"]["steps"],
            **{key: losses.get(f"{key}_loss") for key in ("recons", "pred", "extrap")},
            "params": params, "success": criteria.holds(losses, params),
            "time_to_success_s": time_to_success(metrics.get("history", []), criteria)}


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def true(entry: dict[str, float]) -> str:
    return f"{entry['true']:.4g}" if "true" in entry else "–"


def table(rows: list[dict[str, Any]]) -> str:
    names = sorted({name for r in rows for name in r["params"]})
    head = ["recipe", "seed", "wall s", "steps", "recons", "pred", "extrap"] + \
           [f"{n} (true)" for n in names] + [f"{n} err" for n in names] + ["success", "t→success s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        learned = [f"{r['params'][n]['learned']:.3f} ({true(r['params'][n])})" if n in r["params"] else "–"
                   for n in names]
        errors = [f"{100 * r['params'][n]['rel_error']:.1f} %" if "rel_error" in r["params"].get(n, {}) else "–"
                  for n in names]
        cells = [r["recipe"], str(r["seed"]), fmt(r["wall_s"], 0), str(r["steps"]), fmt(r["recons"]), fmt(r["pred"]),
                 fmt(r["extrap"])] + learned + errors
        cells += ["yes" if r["success"] else "no", fmt(r["time_to_success_s"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(recipe: str, rows: list[dict[str, Any]], criteria: Criteria) -> str:
    mine = [r for r in rows if r["recipe"] == recipe]
    wins = sum(r["success"] for r in mine)
    errors = [max(criteria.errors(r["params"]), default=0.0) for r in mine]
    times = [r["time_to_success_s"] for r in mine if r["time_to_success_s"] is not None]
    median_time = f"{statistics.median(times):.0f} s" if times else "never"
    judged = ", ".join(criteria.judged) if criteria.judged else "every parameter"
    return (f"{recipe}: {wins}/{len(mine)} seeds succeeded; worst relative error ({judged}) median "
            f"{100 * statistics.median(errors):.1f} %, worst {100 * max(errors):.1f} %; median time to success "
            f"{median_time}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="a task preset, e.g. spring_color")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated training seeds")
    parser.add_argument("--recipes", default="fast", help="comma-separated recipes (fast, paper)")
    parser.add_argument("--max-time", type=duration, default=None, help="wall-clock budget per run, e.g. 10m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=None, help="a dataset pivf reads (file or folder); default: generated")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--recons-below", type=float, default=None)
    parser.add_argument("--pred-below", type=float, default=None)
    parser.add_argument("--param-tol", type=float, default=None, help="relative error allowed on each parameter")
    parser.add_argument("--stop-at-success", action="store_true",
                        help="end each run at the first validation that meets the criteria (then test it)")
    parser.add_argument("--out", type=Path, default=Path("runs/recovery"), help="parent of the run directories")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = TASK_CRITERIA.get(args.task, Criteria())
    criteria = Criteria(*(given if given is not None else default for given, default in (
        (args.recons_below, base.recons_below), (args.pred_below, base.pred_below), (args.param_tol, base.param_tol))),
        base.judged)
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = args.recipes.split(",")
    rows = []
    try:
        for seed in seeds:
            for recipe in recipes:  # interleaved, so a slower machine moment hits every recipe alike
                rows.append(row(recipe, seed, run_seed(args.task, recipe, seed, args, criteria), criteria))
                print(f"done: recipe {recipe} seed {seed}", file=sys.stderr, flush=True)
    except PivfUserError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"recovery {args.task} device={args.device} max_time={args.max_time} threads={torch.get_num_threads()} "
          f"criteria={criteria}")
    print(table(rows))
    for recipe in recipes:
        print(summary(recipe, rows, criteria))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
