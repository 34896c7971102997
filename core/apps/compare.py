"""Comparison sweeps: integrators × seeds × a grid of settings, laid out for TensorBoard.

Runs go to ``DIR/<physics>/<integrator>/[<key=value>/...]seed<k>`` (sweep_axes) so TensorBoard shows
one curve per run on every chart (tags are identical across runs). The sweep root gets a
custom-scalars layout that groups each metric across runs, and ``summary.csv``, ``summary.md`` and
``summary.png`` (the validation error against wall time, per integrator and grid point), with a
column per grid axis.

A sweep run again into the same folder skips the runs that finished and restarts the others. A
launcher (launch: local processes, SLURM, Ray) trains the runs; the summary covers what finished.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from pivf.core.apps.launch import Job, LaunchSettings, write_job_files
from pivf.core.apps.sweep_axes import Axes, folder_parts, grid_points
from pivf.core.kernel.atomic import atomic_write_text
from pivf.core.kernel.build import create_plugin
from pivf.core.kernel.config import ExperimentConfig, validate_plugin_sections
from pivf.core.kernel.errors import ConfigError, PivfUserError
from pivf.core.kernel.images import pyplot, save_figure
from pivf.core.kernel.plugin import format_validation_error
from pivf.core.kernel.registry import registry
from pivf.core.training.runs import run_finished

__all__ = ["finish_sweep", "plan_sweep", "run_sweep", "sweep_configs", "write_layout", "write_summary"]

Log = Callable[[str], None]
#: the config of the command's own layers with more ``--set`` items on top
Resolve = Callable[[list[str]], ExperimentConfig]
#: (label, config, whether its run directory is replaced) per run to train
Plan = list[tuple[str, ExperimentConfig, bool]]
#: charted for every objective, after the objective's own headline metrics
COMMON_LAYOUT_METRICS = ("valid/loss", "train/loss", "perf/samples_per_s")


def sweep_configs(resolve: Resolve, base: ExperimentConfig, axes: Axes, out: Path) -> list[ExperimentConfig]:
    """One config per grid point, integrator and seed. A grid point is resolved like ``--set`` items
    given after the command's own (a task among them brings its preset); integrator options the new
    integrator shares (substeps) carry over."""
    configs = []
    for point in grid_points(axes.grid):
        point_config = resolve([f"{key}={json.dumps(value)}" for key, value in point.items()]) if point else base
        for name in axes.integrators:
            cls = registry().get("integrator", name)
            shared = {k: v for k, v in point_config.integrator.params.items() if k in cls.Params.model_fields}
            for seed in axes.seeds:
                raw = point_config.to_dict()
                raw["integrator"] = {"name": name, **shared}
                raw["training"]["seed"] = seed
                raw["logging"]["out"] = str(out.joinpath(point_config.physics.name, name, *folder_parts(point)))
                raw["logging"]["run_name"] = f"seed{seed}"
                try:
                    configs.append(validate_plugin_sections(ExperimentConfig.model_validate(raw)))
                except ValidationError as exc:
                    raise ConfigError(format_validation_error(exc, "config")) from None
    return configs


def _run_dir(config: ExperimentConfig) -> Path:
    return Path(config.logging.out) / str(config.logging.run_name)


def _label(config: ExperimentConfig, out: Path, physics: set[str]) -> str:
    """The run's folder under OUT, less the physics when the sweep has one."""
    parts = _run_dir(config).relative_to(out).parts
    return "/".join(parts if len(physics) > 1 else parts[1:])


def plan_sweep(configs: list[ExperimentConfig], out: Path, overwrite: bool, log: Log) -> Plan:
    """(label, config, whether its run directory is replaced) for each run to train: finished runs are
    skipped unless ``overwrite``, unfinished ones (killed, failed) start again."""
    physics = {config.physics.name for config in configs}
    plan = []
    for config in configs:
        run_dir, label = _run_dir(config), _label(config, out, physics)
        if run_finished(run_dir) and not overwrite:
            log(f"== skipping {label}: finished already ({run_dir}; --overwrite trains it again)")
            continue
        if run_dir.exists() and not run_finished(run_dir):
            log(f"== restarting {label}: {run_dir} holds an unfinished run")
        plan.append((label, config, run_dir.exists()))
    return plan


def run_sweep(plan: Plan, launcher: ModuleType, settings: LaunchSettings,
              out: Path, log: Log) -> list[str]:
    """Train every planned run through the launcher; the failures' messages."""
    if not plan:
        return []
    with launcher.job_folder(out.resolve()) as folder:
        jobs = [Job(label, config, overwrite, folder / f"{label.replace('/', '__')}.yaml",
                    folder / f"{label.replace('/', '__')}.log") for label, config, overwrite in plan]
        write_job_files(jobs)
        return launcher.launch(jobs, settings, folder, log)


def finish_sweep(out: Path, failures: list[str], log: Log) -> None:
    """The summary of the finished runs, then the failures, if runs failed."""
    if not failures or collect_runs(out):
        write_summary(out, log)
    else:
        log("no run finished, so no summary")
    if failures:
        more = f" (and {len(failures) - 1} more failed run(s), above)" if len(failures) > 1 else ""
        raise PivfUserError(failures[0] + more)


def write_layout(out: Path, configs: list[ExperimentConfig], axes: Axes) -> None:
    """A custom-scalars layout: one chart per metric (the objectives' headline metrics first), one
    line per run. A headline chart holds the validation curve and the test split's figure at the
    run's last step: metrics of extrapolation exist only on the longer test sequences. Each learned
    physical parameter gets a chart, its true value drawn beside it."""
    from torch.utils.tensorboard import SummaryWriter

    charts: dict[str, list[Any]] = {}
    for config in configs:
        for metric in registry().get("objective", config.objective.name).headline:
            charts[metric] = ["Multiline", [f"^(valid|test)/{metric}$"]]
    for physics in {config.physics.name: config.physics for config in configs}.values():
        for name in create_plugin("physics", physics).learned_parameters():
            charts[f"param/{name}"] = ["Multiline", [f"^param(_true)?/{name}$"]]
    charts.update({tag: ["Multiline", [f"^{tag}$"]] for tag in COMMON_LAYOUT_METRICS})
    writer = SummaryWriter(log_dir=str(out))
    writer.add_custom_scalars({"by integrator": charts})
    writer.add_text("sweep", axes.describe())
    writer.close()


def collect_runs(out: Path) -> list[dict[str, Any]]:
    rows = []
    for metrics_path in sorted(Path(out).glob("**/seed*/metrics.json")):
        axis_parts = metrics_path.relative_to(out).parts[2:-2]
        if metrics_path.parent.parent == Path(out) or not all("=" in part for part in axis_parts):
            continue
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            rows.append(_summary_row(metrics, dict(part.split("=", 1) for part in axis_parts), metrics_path, out))
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, (KeyError, TypeError)) else str(exc)
            raise PivfUserError(f"{metrics_path}: not a pivf metrics file ({' '.join(reason.split())}); train that "
                                "run again or remove it") from None
    return rows


def _summary_row(metrics: dict[str, Any], grid: dict[str, str], metrics_path: Path, out: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"physics": metrics["physics"], "integrator": metrics["integrator"], **grid,
                           "seed": metrics["seed"]}
    row.update({k: v for k, v in metrics["eval"].items() if k != "split"})
    row.update({f"{name}_learned": p["learned"] for name, p in metrics["params"].items()})
    row.update({f"{name}_rel_error": p["rel_error"] for name, p in metrics["params"].items() if "rel_error" in p})
    row.update({"wall_s": metrics["train"]["wall_s"], "samples_per_s": metrics["train"]["samples_per_s"],
                "run": str(metrics_path.parent.relative_to(out))})
    return row


def _axis_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The grid's columns of the summary: those between ``integrator`` and ``seed``."""
    return list(dict.fromkeys(key for row in rows for key in list(row)[2:list(row).index("seed")]))


def write_summary(out: Path, log: Log = print) -> list[dict[str, Any]]:
    """summary.csv (one row per run), summary.md (means over seeds) and summary.png."""
    rows = collect_runs(out)
    if not rows:
        raise PivfUserError(f"{out} holds no finished runs (looked for <physics>/<integrator>/[key=value/...]"
                            "seed*/metrics.json)")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buffer.getvalue())
    atomic_write_text(out / "summary.md", _markdown(rows, columns))
    _plot(out, rows)
    log(f"summary of {len(rows)} runs: {out / 'summary.csv'}, {out / 'summary.md'}, {out / 'summary.png'}")
    return rows


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    keys = ["physics", "integrator", *_axis_columns(rows)]
    numeric = [c for c in columns if c not in (*keys, "seed", "run")]
    lines = ["| " + " | ".join(keys) + " | seeds | " + " | ".join(numeric) + " |",
             "|---" * (len(keys) + 1 + len(numeric)) + "|"]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(key, "")) for key in keys), []).append(row)
    for group_keys, group in groups.items():
        means = []
        for column in numeric:
            values = [r[column] for r in group if isinstance(r.get(column), (int, float))]
            means.append(f"{statistics.fmean(values):.4g}" if values else "")
        lines.append("| " + " | ".join(group_keys) + f" | {len(group)} | " + " | ".join(means) + " |")
    return "Means over seeds.\n\n" + "\n".join(lines) + "\n"


def _plot(out: Path, rows: list[dict[str, Any]]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fig, ax = pyplot().subplots(figsize=(6, 4))
    colours: dict[str, Any] = {}
    axes = _axis_columns(rows)
    for row in rows:
        events = EventAccumulator(str(out / row["run"]), size_guidance={"scalars": 0})
        events.Reload()
        tag = next((t for t in ("valid/pred", "valid/loss") if t in events.Tags()["scalars"]), None)
        if tag is None:
            continue
        scalars = events.Scalars(tag)
        start = scalars[0].wall_time
        label = " ".join([row["integrator"], *(f"{key}={row[key]}" for key in axes if key in row)])
        colour = colours.setdefault(label, f"C{len(colours) % 10}")
        ax.plot([s.wall_time - start for s in scalars], [s.value for s in scalars], color=colour,
                label=label if label not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("validation error")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "summary.png")
