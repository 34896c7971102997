"""The ``pivf`` command line: thin commands that turn flags into a config and call core."""
from __future__ import annotations

import errno
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
import yaml
from typer.core import TyperGroup

from pivf.cli.data import data_app
from pivf.cli.options import file_to_write, finite, flag_name, name_values, parse_duration, with_config_flags
from pivf.core.kernel.config import ExperimentConfig
from pivf.core.kernel.errors import PivfUserError

_state = {"debug": False}
#: an error echoes at most this much of what it quotes (a value can be megabytes)
MAX_MESSAGE = 500
#: failures of the file system the user can fix (a full disk, a read-only or missing folder): one line
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                       errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG}


def _environment_error(exc: Exception) -> bool:
    return isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS


def _one_line(exc: Exception) -> str:
    if _is_usage_error(exc):
        message = exc.format_message()  # type: ignore[attr-defined]
    elif _environment_error(exc):
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror)  # type: ignore[attr-defined]
    else:
        message = str(exc)
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else f"{message[:MAX_MESSAGE]}… ({len(message)} characters)"


def _is_usage_error(exc: Exception) -> bool:
    """click's usage errors (unknown option, ill-typed value, missing argument) carry exit code 2 and
    ``format_message``; duck-typed because typer vendors click in newer releases."""
    return getattr(exc, "exit_code", None) == 2 and callable(getattr(exc, "format_message", None))


class _UserErrorsAsExitCode(TyperGroup):
    """Print a user error (ours, or a mistyped flag) as one line and exit 2, under the console script
    and CliRunner alike."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except EOFError as exc:  # click would take it for Ctrl-D at a prompt and print a bare "Aborted!"
            raise RuntimeError(f"unexpected end of file ({exc or 'EOFError'})") from exc
        except Exception as exc:
            if _state["debug"] or not (isinstance(exc, PivfUserError) or _is_usage_error(exc)
                                       or _environment_error(exc)):
                raise
            command = getattr(getattr(exc, "ctx", None), "command_path", None)
            hint = f" (see `{command} --help`)" if _is_usage_error(exc) and command else ""
            typer.echo(f"error: {_one_line(exc)}{hint}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="pivf",
    cls=_UserErrorsAsExitCode,
    help="Learn physics from video: train PAIG/HGN models with swappable physics and integrator plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Inspect the resolved experiment config and the recipes.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="show full tracebacks for errors")] = False) -> None:
    _state["debug"] = debug
    _plugin_warnings_on_one_line()


def _plugin_warnings_on_one_line() -> None:
    """A broken plugin is warned about on every command: one line, without Python's source echo."""
    import warnings

    from pivf.core.kernel.registry import PluginLoadWarning

    shown = warnings.showwarning
    if getattr(shown, "one_line_plugin_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if issubclass(category, PluginLoadWarning):
            typer.echo(f"warning: {_one_line(Exception(str(message)))}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show.one_line_plugin_warnings = True  # type: ignore[attr-defined]
    warnings.showwarning = show


@app.command("plugins")
def plugins_command(
    kind: Annotated[str | None, typer.Option(help="only this kind: physics, integrator, decoder, encoder, objective, "
                                                  "task")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List installed plugins: kind, name, description, providing distribution and status."""
    from pivf.core.kernel.hookspecs import HOOK_OF_KIND
    from pivf.core.kernel.registry import registry

    if kind is not None and kind not in HOOK_OF_KIND:
        raise PivfUserError(f"--kind: unknown kind '{kind}'; allowed: {', '.join(HOOK_OF_KIND)}")
    rows = [row.as_dict() for row in registry().rows(kind)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    widths = {key: max([len(key)] + [len(r[key]) for r in rows]) for key in ("kind", "name", "distribution", "status")}
    header = {"kind": "KIND", "name": "NAME", "distribution": "PROVIDER", "status": "STATUS",
              "description": "DESCRIPTION"}
    for row in [header] + rows:
        provider = f"{row['distribution']} {row.get('version', '')}".strip()
        detail = row.get("error") or row["description"]
        typer.echo(f"{row['kind']:<{widths['kind']}}  {row['name']:<{widths['name']}}  "
                   f"{provider:<{widths['distribution'] + 8}}  {row['status']:<8}  {detail}")


@config_app.command("show")
@with_config_flags
def config_show(
    config: ExperimentConfig,
    sources: dict[str, str],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of YAML")] = False,
    explain_it: Annotated[bool, typer.Option("--explain", help="one line per field: its value, the layer that set "
                                                               "it (default, task, recipe, config file, flag, "
                                                               "--set, or derived from another field) and its "
                                                               "description")] = False,
) -> None:
    """Print the resolved config, each layer over the one before: defaults < task preset < the
    objective's recipe (--recipe) < --config file < flags < --set. Fields derived from another
    (a plugin's copy of data.input_steps) are left out; --explain shows them."""
    from pivf.core.kernel.explain import explain, settable

    if explain_it:
        typer.echo(explain(config, sources))
        return
    shown = settable(config, sources)
    typer.echo(json.dumps(shown, indent=2) if as_json else yaml.safe_dump(shown, sort_keys=False), nl=not as_json)


@config_app.command("recipes")
def config_recipes() -> None:
    """List the installed objectives' recipes (--recipe NAME): name, objective, description; the first
    of each objective is its default."""
    from pivf.core.kernel.registry import registry

    recipes = [recipe for name in registry().names("objective")
               for recipe in registry().get("objective", name).recipes.values()]
    rows = [("NAME", "OBJECTIVE", "DESCRIPTION")] + [(r.name, r.objective, r.description) for r in recipes]
    widths = [max(len(row[column]) for row in rows) for column in (0, 1)]
    for name, objective, description in rows:
        typer.echo(f"{name:<{widths[0]}}  {objective:<{widths[1]}}  {description}")


@app.command("train")
@with_config_flags
def train_command(
    config: ExperimentConfig,
    given: list[str],
    resume: Annotated[Path | None, typer.Option(help="continue this run directory from its last checkpoint "
                                                        "(its own config.yaml; --epochs, --max-time and --device "
                                                        "may change)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier run of the same "
                                                                "logging.run_name: the files pivf wrote there are "
                                                                "deleted first; a folder that is not a pivf run, or "
                                                                "holds files of yours, is refused")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output; print the final metrics as "
                                                              "JSON")] = False,
) -> None:
    """Train a model: encoder (state at the last input frame) → integrator(physics) → decoder.

    With no --data, a small dataset for the task is generated and cached first, so this works on a
    fresh machine. Writes a run directory with config.yaml, metrics.json, checkpoints, TensorBoard
    events, rollouts.png and templates.png. Under torchrun it trains data-parallel.
    """
    from pivf.core.training import train as training

    log = (lambda _msg: None) if quiet else typer.echo
    if resume:
        allowed = {flag_name(name): name for name in training.RESUME_CHANGES}
        refused = [flag for flag in given if flag not in allowed] + (["--overwrite"] if overwrite else [])
        if refused:
            raise PivfUserError(f"--resume: {refused[0]} cannot be used, a resumed run keeps its config.yaml; "
                                f"allowed with --resume: {', '.join(allowed)}")
        changes = {allowed[flag]: getattr(config.training, allowed[flag]) for flag in given}
        metrics = training.resume(resume, log=log, quiet=quiet, **changes)
    else:
        metrics = training.train(config, log=log, quiet=quiet, overwrite=overwrite)
    if quiet:
        typer.echo(json.dumps(metrics))


ACCEPT_HELP = "use the run's dataset although it changed since the run trained on it"


@app.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `pivf train`")],
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    accept_changed_data: Annotated[bool, typer.Option("--accept-changed-data", help=ACCEPT_HELP)] = False,
) -> None:
    """Re-evaluate a run's checkpoint on the test split (prediction, extrapolation, reconstruction)."""
    from pivf.core.training.evaluate import evaluate_run

    if checkpoint not in ("best", "last"):
        raise PivfUserError(f"--checkpoint: unknown checkpoint '{checkpoint}'; allowed: best, last")
    typer.echo(json.dumps(evaluate_run(run_dir, checkpoint, device, log=typer.echo,
                                       accept_changed_data=accept_changed_data), indent=2))


@app.command("rollout")
def rollout_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `pivf train`")],
    out: Annotated[Path | None, typer.Option(help="PNG to write (default RUN_DIR/rollout.png)")] = None,
    n: Annotated[int, typer.Option(min=1, help="sequences")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="frames to roll out")] = 30,
    speed: Annotated[float, typer.Option(help="time-step factor: -1 runs backwards, 2 twice as fast")] = 1.0,
    prior: Annotated[bool, typer.Option("--prior", help="start from states sampled from the prior (variational "
                                                        "HGN)")] = False,
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    tracks: Annotated[bool, typer.Option("--tracks", help="draw over the test frames where the encoder sees each "
                                                          "object (rings) and where the physics predicts it "
                                                          "(crosses) instead (default RUN_DIR/tracks.png)")] = False,
    accept_changed_data: Annotated[bool, typer.Option("--accept-changed-data", help=ACCEPT_HELP)] = False,
) -> None:
    """Render rollouts of a trained model: from test sequences (truth above prediction), backwards in
    time (--speed -1), faster or slower, or from the prior (--prior); or its tracks (--tracks)."""
    from pivf.core.training.evaluate import render_rollouts
    from pivf.core.training.tracks import render_tracks

    if checkpoint not in ("best", "last"):
        raise PivfUserError(f"--checkpoint: unknown checkpoint '{checkpoint}'; allowed: best, last")
    if finite("--speed", speed) == 0:
        raise PivfUserError("--speed: must not be 0 (the state would never move)")
    file_to_write("--out", out, "PNG")
    if tracks:
        path = render_tracks(run_dir, out or run_dir / "tracks.png", n, checkpoint, device, log=typer.echo,
                             accept_changed_data=accept_changed_data)
        typer.echo(f"wrote {path}")
        return
    try:
        path = render_rollouts(run_dir, out or run_dir / "rollout.png", n, steps, speed, prior, checkpoint, device,
                               log=typer.echo, accept_changed_data=accept_changed_data)
    except ValueError as exc:  # e.g. --prior on a model without a prior
        raise PivfUserError(str(exc)) from None
    typer.echo(f"wrote {path}")


@app.command("control")
def control_command(
    run_dir: Annotated[Path, typer.Argument(help="a run trained on an actuated task (e.g. mujoco_pendulum_motor)")],
    policy: Annotated[str, typer.Option(help="model (plan through the learned model from pixels), true (the "
                                             "true model and state) or random")] = "model",
    episodes: Annotated[int, typer.Option(min=1, help="episodes, each from rest near hanging down")] = 10,
    steps: Annotated[int, typer.Option(min=4, help="control steps (frames) per episode")] = 100,
    goal: Annotated[float, typer.Option(help="goal angle in rad from hanging down (π: upright)")] = math.pi,
    task_set: Annotated[list[str] | None, typer.Option("--task-set", help="change the live system: task "
                                                                               "param=value (repeatable), e.g. "
                                                                               "mass=1.5")] = None,
    edit: Annotated[list[str] | None, typer.Option(help="set a learned parameter of the model: name=value "
                                                           "(repeatable), e.g. actuation=4.36")] = None,
    horizon: Annotated[int, typer.Option(min=1, help="frames planned ahead")] = 25,
    population: Annotated[int, typer.Option(min=2, help="input sequences sampled per planner iteration")] = 300,
    iterations: Annotated[int, typer.Option(min=1, help="planner iterations per control step")] = 4,
    spread: Annotated[float, typer.Option(min=0.01, help="the sampling spread each step starts from")] = 0.5,
    seed: Annotated[int, typer.Option(help="seed of the start angles and the planner")] = 0,
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    out: Annotated[Path | None, typer.Option(help="JSON file to write the results to")] = None,
    filmstrip: Annotated[Path | None, typer.Option(help="PNG of the first episode's frames")] = None,
) -> None:
    """Control a trained system from its frames: model-predictive control through the learned model
    (swing a pendulum up and hold it), measured over episodes beside the true model or random inputs."""
    from pivf.core.apps.control import PlannerSettings
    from pivf.core.apps.control_run import control_run
    from pivf.core.kernel.atomic import atomic_write_text

    if checkpoint not in ("best", "last"):
        raise PivfUserError(f"--checkpoint: unknown checkpoint '{checkpoint}'; allowed: best, last")
    edits, task_changes = name_values(edit, "--edit"), name_values(task_set, "--task-set")
    if any(not isinstance(value, (int, float)) or isinstance(value, bool) for value in edits.values()):
        raise PivfUserError("--edit: expected name=number, e.g. actuation=4.36")
    if population < 20:
        raise PivfUserError(f"--population: must be at least 20 (the planner keeps the best 20), got {population}")
    finite("--goal", goal)
    finite("--spread", spread)
    file_to_write("--out", out, "JSON")
    file_to_write("--filmstrip", filmstrip, "PNG")
    settings = PlannerSettings(horizon=horizon, population=population, iterations=iterations, spread=spread)
    result = control_run(run_dir, policy, episodes, steps, goal, task_changes,
                         {key: float(value) for key, value in edits.items()}, settings, seed, checkpoint, filmstrip,
                         log=typer.echo)
    text = json.dumps(result, indent=2)
    if out is not None:
        atomic_write_text(out, text + "\n")
    typer.echo(text)



@app.command("compare")
@with_config_flags
def compare_command(
    config: ExperimentConfig,
    resolve: Callable[[list[str]], ExperimentConfig],
    integrators: Annotated[str | None, typer.Option(help="comma-separated integrators [default: "
                                                         "euler,leapfrog,yoshida,rk4]")] = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated seeds [default: 0]")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="a sweep axis over any setting: section.field=v1,v2 "
                                                        "(repeatable; every combination is trained), e.g. "
                                                        "training.lr=1e-3,3e-3 or data.task=spring_color,"
                                                        "pendulum")] = None,
    sweep: Annotated[Path | None, typer.Option(help="YAML or TOML sweep file: integrators, seeds and grid "
                                                    "({section.field: [values]})")] = None,
    jobs: Annotated[int | None, typer.Option(help="runs trained at once [default: local 1 (in this process), "
                                                  "slurm and ray as many as the cluster takes]")] = None,
    report: Annotated[Path | None, typer.Option(help="only rebuild the summary of this finished sweep")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="train again the runs that already finished in "
                                                                "OUT (by default they are skipped)")] = False,
    launcher: Annotated[str, typer.Option(help="local (processes here), slurm (submitit; pivf[slurm]) or ray "
                                               "(pivf[ray])", rich_help_panel="Launcher")] = "local",
    cpus_per_run: Annotated[int, typer.Option(min=1, help="CPUs each run asks for (slurm, ray)",
                                              rich_help_panel="Launcher")] = 1,
    gpus_per_run: Annotated[int, typer.Option(min=0, help="GPUs each run asks for; above 1 the run trains "
                                                          "data-parallel under torchrun, one process per GPU",
                                              rich_help_panel="Launcher")] = 0,
    nodes_per_run: Annotated[int, typer.Option(min=1, help="machines each run trains on, under torchrun "
                                                           "(slurm)", rich_help_panel="Launcher")] = 1,
    partition: Annotated[str | None, typer.Option(help="SLURM partition", rich_help_panel="Launcher")] = None,
    time: Annotated[str | None, typer.Option(help="time limit of each job, e.g. 2h or 90m [default: 24h]",
                                             rich_help_panel="Launcher")] = None,
    slurm_param: Annotated[list[str] | None, typer.Option(help="another sbatch option: key=value (repeatable), "
                                                               "e.g. account=myproject, qos=high, mem=32G",
                                                          rich_help_panel="Launcher")] = None,
    submitit_cluster: Annotated[str | None, typer.Option(help="slurm (default) or local: submitit runs the "
                                                              "same job files on this machine, a dry run",
                                                         rich_help_panel="Launcher")] = None,
    ray_address: Annotated[str | None, typer.Option(help="a running Ray cluster: auto or HOST:PORT [default: "
                                                         "a Ray instance on this machine, --jobs workers]",
                                                    rich_help_panel="Launcher")] = None,
) -> None:
    """Train several integrators, seeds and settings, and summarise them.

    Runs land in OUT/<physics>/<integrator>/seed<k> (--out), with a key=value folder per --grid axis
    before seed<k>, so `tensorboard --logdir OUT` overlays one curve per run; OUT gets a
    custom-scalars layout, summary.csv, summary.md and summary.png. Run again into the same OUT, it
    skips the runs that finished and restarts the others. With the local launcher a failed run stops
    the others; on SLURM or Ray the others go on. The summary covers the runs that finished.
    """
    from pivf.core.apps import compare
    from pivf.core.apps.launch import LaunchSettings
    from pivf.core.apps.launch import launcher as load_launcher
    from pivf.core.apps.sweep_axes import read_axes
    from pivf.core.kernel.paths import make_dir

    if report is not None:
        compare.write_summary(report, log=typer.echo)
        return
    axes = read_axes(integrators, seeds, grid, sweep)
    if jobs is not None and jobs < 1:
        raise PivfUserError(f"--jobs: must be at least 1, got {jobs}")
    _only_with(launcher, {"--partition": ("slurm", partition), "--time": ("slurm", time),
                          "--slurm-param": ("slurm", slurm_param), "--submitit-cluster": ("slurm", submitit_cluster),
                          "--ray-address": ("ray", ray_address)})
    settings = LaunchSettings(
        jobs=jobs, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, nodes_per_run=nodes_per_run,
        partition=partition, time_min=math.ceil(parse_duration(time, "--time") / 60) if time else None,
        slurm_params=tuple(_key_value(item, "--slurm-param") for item in slurm_param or []),
        submitit_cluster=submitit_cluster or "slurm", ray_address=ray_address)
    chosen = load_launcher(launcher, settings)
    out_path = Path(config.logging.out).expanduser()
    configs = compare.sweep_configs(resolve, config, axes, out_path)
    out = make_dir(config.logging.out, "--out")
    plan = compare.plan_sweep(configs, out_path, overwrite, log=typer.echo)
    compare.write_layout(out, configs, axes)
    failures = compare.run_sweep(plan, chosen, settings, out, log=typer.echo)
    compare.finish_sweep(out, failures, log=typer.echo)


def _only_with(launcher: str, options: dict[str, tuple[str, object]]) -> None:
    """An option of another launcher than the chosen one is a mistake, not something to ignore."""
    for option, (owner, value) in options.items():
        if value is not None and launcher != owner:
            raise PivfUserError(f"{option}: only with --launcher {owner} (the launcher is {launcher})")


def _key_value(item: str, option: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise PivfUserError(f"{option}: expected key=value, got '{item}'")
    return key.strip(), value.strip()


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
