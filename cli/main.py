"""The ``pivf`` command line: thin commands that turn flags into a config and call core."""
from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from pivf.cli.options import with_config_flags
from pivf.core.config import ExperimentConfig, dump_yaml
from pivf.core.errors import PivfUserError

app = typer.Typer(
    name="pivf",
    help="Learn physics from video: train PAIG/HGN models with swappable physics and integrator plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Inspect the resolved experiment config.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_state = {"debug": False}


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="show full tracebacks for errors")] = False) -> None:
    _state["debug"] = debug


@app.command("plugins")
def plugins_command(
    kind: Annotated[Optional[str], typer.Option(help="only this kind: physics, integrator, decoder, encoder, task")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List installed plugins: kind, name, description, providing distribution and status."""
    from pivf.core.hookspecs import HOOK_OF_KIND
    from pivf.core.registry import registry

    if kind is not None and kind not in HOOK_OF_KIND:
        raise PivfUserError(f"--kind: unknown kind '{kind}'; allowed: {', '.join(HOOK_OF_KIND)}")
    rows = [row.as_dict() for row in registry().rows(kind)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    widths = {key: max([len(key)] + [len(r[key]) for r in rows]) for key in ("kind", "name", "distribution", "status")}
    for row in [{"kind": "KIND", "name": "NAME", "distribution": "PROVIDER", "status": "STATUS", "description": "DESCRIPTION"}] + rows:
        provider = f"{row['distribution']} {row.get('version', '')}".strip()
        detail = row.get("error") or row["description"]
        typer.echo(f"{row['kind']:<{widths['kind']}}  {row['name']:<{widths['name']}}  "
                   f"{provider:<{widths['distribution'] + 8}}  {row['status']:<8}  {detail}")


@config_app.command("show")
@with_config_flags
def config_show(
    config: ExperimentConfig,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of YAML")] = False,
) -> None:
    """Print the fully resolved config: defaults < task preset < --config file < flags < --set."""
    typer.echo(json.dumps(config.to_dict(), indent=2) if as_json else dump_yaml(config), nl=not as_json)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except PivfUserError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
