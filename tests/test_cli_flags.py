"""The command line the docs show is the one installed: every ``pivf ...`` command in README.md and
docs/*.md (```bash blocks and inline code) names only options its command declares, and every option
keeps its names and help, so a new typer release cannot silently rename or drop one."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from pivf.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEPARATORS = {"&&", "||", ";"}
OPTION = re.compile(r"--?[A-Za-z][\w-]*")
#: short forms the commands declare; the docs spell out the long ones
SHORT_FORMS = {("train",): ["-q", "-c", "-s"], ("config", "show"): ["-c", "-s"], ("compare",): ["-c", "-s"]}
CLI = get_command(app)


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, tokens after ``pivf``) for every pivf command shown in a bash block or inline code."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        snippets = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                    for line in block.replace("\\\n", " ").splitlines()]
        snippets += re.findall(r"`(pivf [^`\n]*)`", text)
        for snippet in snippets:
            tokens = [token.strip("[]") for token in shlex.split(snippet, comments=True)]
            starts = [i for i, token in enumerate(tokens)
                      if token == "pivf" or (token == "pivf.cli" and tokens[i - 1] == "-m")]
            for start in starts:
                end = next((i for i in range(start + 1, len(tokens)) if tokens[i] in SEPARATORS), len(tokens))
                found.append((f"{doc.name}: {snippet.strip()}", tokens[start + 1:end]))
    return found


def declared_options(path: tuple[str, ...]) -> set[str]:
    """Every option name (long, short and secondary) of the command at ``path`` (() is the root)."""
    command = CLI
    ctx = command.make_context("pivf", [], resilient_parsing=True)
    for name in path:
        command = command.get_command(ctx, name)  # type: ignore[attr-defined]
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    return {opt for param in command.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)}


def command_path(tokens: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The subcommand names at the start of ``tokens`` (options of the groups skipped), and the rest."""
    command, path, rest = CLI, [], list(tokens)
    ctx = command.make_context("pivf", [], resilient_parsing=True)
    while hasattr(command, "get_command"):
        name = next((token for token in rest if not token.startswith("-")), None)
        sub = command.get_command(ctx, name) if name else None
        if sub is None:
            break
        rest.remove(name)
        path.append(name)
        command, ctx = sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True)
    return tuple(path), rest


DOCUMENTED = documented_commands()


def test_the_docs_show_the_commands_this_test_reads():
    paths = {command_path(tokens)[0] for _, tokens in DOCUMENTED}
    assert len(DOCUMENTED) > 40
    assert {("train",), ("config", "show"), ("compare",), ("control",), ("rollout",), ("data", "generate"),
            ("data", "info"), ("plugins",), ("evaluate",)} <= paths


@pytest.mark.parametrize("where, tokens", DOCUMENTED, ids=[where[:80] for where, _ in DOCUMENTED])
def test_every_documented_option_is_declared(where, tokens):
    path, rest = command_path(tokens)
    options = {token.split("=")[0] for token in rest if OPTION.fullmatch(token.split("=")[0])}
    missing = options - declared_options(path) - (declared_options(()) if path else set())
    assert not missing, f"{where}: `pivf {' '.join(path)}` does not accept {sorted(missing)}"


@pytest.mark.parametrize("path", SHORT_FORMS, ids=" ".join)
def test_short_forms_are_declared(path):
    assert set(SHORT_FORMS[path]) <= declared_options(path)


def every_command(command=None, path=()):
    """(path, command, context) for the root and every subcommand."""
    command = command or CLI
    yield path, command, command.make_context(path[-1] if path else "pivf", [], resilient_parsing=True)
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, (*path, name))


COMMANDS = {" ".join(path) or "pivf": (command, ctx) for path, command, ctx in every_command()}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name):
    command, ctx = COMMANDS[name]
    options = [param for param in command.get_params(ctx) if param.param_type_name == "option"]
    assert options and all(param.help for param in options), [param.opts for param in options if not param.help]


def test_train_parses_its_short_and_boolean_flags():
    train = CLI.commands["train"]  # type: ignore[attr-defined]
    ctx = train.make_context("train", ["-q", "--overwrite", "--resume", "runs/r", "-c", "exp.yaml", "-s", "data.dt=1",
                                       "--epochs", "3"])
    assert (ctx.params["quiet"], ctx.params["overwrite"], str(ctx.params["resume"])) == (True, True, "runs/r")
    assert (str(ctx.params["config"]), list(ctx.params["set"]), ctx.params["epochs"]) == ("exp.yaml", ["data.dt=1"], 3)


def test_config_show_json_with_short_forms(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("training:\n  epochs: 7\n")
    result = CliRunner().invoke(app, ["config", "show", "--json", "-c", str(path), "-s", "training.lr=0.002"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["training"]["epochs"], shown["training"]["lr"]) == (7, 0.002)
