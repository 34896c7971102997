"""Integrator comparison sweeps: one physics, several integrators and seeds, laid out for TensorBoard.

Runs go to ``DIR/<physics>/<integrator>/seed<k>`` so TensorBoard shows one curve per integrator and
seed on every chart (tags are identical across runs). The sweep root gets a custom-scalars layout that
groups each metric across integrators, and ``summary.csv``, ``summary.md`` and ``summary.png`` (the
validation error against wall time, per integrator).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pivf.core.config import ExperimentConfig, dump_yaml, validate_plugin_sections
from pivf.core.errors import PivfUserError
from pivf.core.images import pyplot, save_figure
from pivf.core.registry import registry
from pivf.core.atomic import atomic_write_text

Log = Callable[[str], None]
LAYOUT_METRICS = ("valid/pred", "valid/recons", "valid/loss", "train/loss", "perf/samples_per_s")


def sweep_configs(base: ExperimentConfig, integrators: list[str], seeds: list[int], out: Path) -> list[ExperimentConfig]:
    """One config per (integrator, seed); integrator options the new integrator shares (substeps) carry over."""
    configs = []
    for name in integrators:
        cls = registry().get("integrator", name)
        shared = {k: v for k, v in base.integrator.params.items() if k in cls.Params.model_fields}
        for seed in seeds:
            raw = base.to_dict()
            raw["integrator"] = {"name": name, **shared}
            raw["training"]["seed"] = seed
            raw["logging"]["out"] = str(out / base.physics.name / name)
            raw["logging"]["run_name"] = f"seed{seed}"
            configs.append(validate_plugin_sections(ExperimentConfig.model_validate(raw)))
    return configs


def run_sweep(configs: list[ExperimentConfig], jobs: int, log: Log) -> None:
    """Train every config: in this process one after another, or as ``jobs`` concurrent processes."""
    if jobs <= 1:
        from pivf.core.train import train

        for config in configs:
            log(f"== {config.physics.name} / {config.integrator.name} / seed {config.training.seed}")
            train(config, log=log, quiet=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        pending = []
        for i, config in enumerate(configs):
            path = Path(tmp) / f"run{i}.yaml"
            path.write_text(dump_yaml(config))
            pending.append((config, path))
        running: list[tuple[ExperimentConfig, subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < jobs:
                config, path = pending.pop(0)
                cmd = [sys.executable, "-m", "pivf.cli", "train", "--config", str(path), "--quiet"]
                running.append((config, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
            config, proc = running.pop(0)
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise PivfUserError(f"run {config.integrator.name}/seed{config.training.seed} failed: "
                                    f"{err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
            log(f"== finished {config.integrator.name} / seed {config.training.seed}")


def write_layout(out: Path, integrators: list[str]) -> None:
    """A custom-scalars layout: one chart per metric, one line per integrator run."""
    from torch.utils.tensorboard import SummaryWriter

    layout = {"by integrator": {tag: ["Multiline", [f"^{tag}$"]] for tag in LAYOUT_METRICS}}
    writer = SummaryWriter(log_dir=str(out))
    writer.add_custom_scalars(layout)
    writer.add_text("sweep", "integrators: " + ", ".join(integrators))
    writer.close()


def collect_runs(out: Path) -> list[dict[str, Any]]:
    rows = []
    for metrics_path in sorted(Path(out).glob("*/*/seed*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        row: dict[str, Any] = {"physics": metrics["physics"], "integrator": metrics["integrator"],
                               "seed": metrics["seed"]}
        row.update({k: v for k, v in metrics["eval"].items() if k != "split"})
        row.update({f"{name}_learned": p["learned"] for name, p in metrics["params"].items()})
        row.update({f"{name}_rel_error": p["rel_error"] for name, p in metrics["params"].items() if "rel_error" in p})
        row.update({"wall_s": metrics["train"]["wall_s"], "samples_per_s": metrics["train"]["samples_per_s"],
                    "run": str(metrics_path.parent.relative_to(out))})
        rows.append(row)
    return rows


def write_summary(out: Path, log: Log = print) -> list[dict[str, Any]]:
    """summary.csv (one row per run), summary.md (per-integrator means) and summary.png."""
    rows = collect_runs(out)
    if not rows:
        raise PivfUserError(f"{out} holds no finished runs (looked for */*/seed*/metrics.json)")
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
    numeric = [c for c in columns if c not in ("physics", "integrator", "seed", "run")]
    lines = ["| physics | integrator | seeds | " + " | ".join(numeric) + " |",
             "|---" * (3 + len(numeric)) + "|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["physics"], row["integrator"]), []).append(row)
    for (physics, integrator), group in groups.items():
        means = []
        for column in numeric:
            values = [r[column] for r in group if isinstance(r.get(column), (int, float))]
            means.append(f"{statistics.fmean(values):.4g}" if values else "")
        lines.append(f"| {physics} | {integrator} | {len(group)} | " + " | ".join(means) + " |")
    return "Means over seeds.\n\n" + "\n".join(lines) + "\n"


def _plot(out: Path, rows: list[dict[str, Any]]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fig, ax = pyplot().subplots(figsize=(6, 4))
    colours: dict[str, Any] = {}
    for row in rows:
        events = EventAccumulator(str(out / row["run"]), size_guidance={"scalars": 0})
        events.Reload()
        tag = next((t for t in ("valid/pred", "valid/loss") if t in events.Tags()["scalars"]), None)
        if tag is None:
            continue
        scalars = events.Scalars(tag)
        start = scalars[0].wall_time
        colour = colours.setdefault(row["integrator"], f"C{len(colours)}")
        ax.plot([s.wall_time - start for s in scalars], [s.value for s in scalars], color=colour,
                label=row["integrator"] if row["integrator"] not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("validation error")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "summary.png")
