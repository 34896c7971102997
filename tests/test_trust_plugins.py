"""A third-party plugin can break only itself: whatever its module does while it loads (raise any
exception, exit, interrupt, declare a name or a hook pivf cannot use, fail in ``unavailable()`` or in a
params default) is one ``broken`` row with a one-line reason, and every other command keeps working."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest
from test_registry import MORSE_HEADER
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.kernel.errors import UnknownPluginError
from pivf.core.kernel.registry import (
    ALLOW_ENV,
    DENY_ENV,
    DISABLE_AUTOLOAD_ENV,
    PluginLoadWarning,
    Registry,
    registry,
    reset_registry,
)

runner = CliRunner()

RETURNS = "@pivf.hookimpl\ndef pivf_physics():\n    return [{}]\n"

#: case → (module body after MORSE_HEADER, kind and name of the broken row, its reason exactly)
FLAWED = {
    "GeneratorExit at import": ("raise GeneratorExit('closed early')\n", "?", "flawed", "GeneratorExit: closed early"),
    "its own BaseException at import": ("class Halt(BaseException):\n    pass\n\nraise Halt('stop\\n  here')\n",
                                        "?", "flawed", "Halt: stop here"),
    "a multi-line import error": ("raise ImportError('needs libfoo\\n\\n  see the docs')\n", "?", "flawed",
                                  "ImportError: needs libfoo see the docs"),
    "a hook signature pivf does not call": (
        "@pivf.hookimpl\ndef pivf_physics(config):\n    return [Morse]\n", "?", "flawed",
        "PluginValidationError: Plugin 'entry point pivf_flawed' for hook 'pivf_physics' hookimpl definition: "
        "pivf_physics(config) Argument(s) {'config'} are declared in the hookimpl but can not be found in the "
        "hookspec"),
    "a module __dir__ that exits": ("def __dir__():\n    raise SystemExit(5)\n", "?", "flawed", "SystemExit: 5"),
    "a hook raising KeyboardInterrupt": ("@pivf.hookimpl\ndef pivf_physics():\n    raise KeyboardInterrupt\n",
                                         "physics", "flawed", "pivf_physics() raised KeyboardInterrupt"),
    "a hook raising a multi-line error": ("@pivf.hookimpl\ndef pivf_physics():\n    raise RuntimeError('a\\nb')\n",
                                          "physics", "flawed", "pivf_physics() raised RuntimeError: a b"),
    "a name that escapes a folder": ("class Escaping(Morse):\n    name = "
                                     "'x/../../escaped'\n\n" + RETURNS.format("Escaping"),
                                     "physics", "x/../../escaped",
                                     "Escaping name 'x/../../escaped' is not plain (letters, digits and _ only)"),
    "a name spanning lines": ("class Spanning(Morse):\n    name = 'two\\nlines'\n\n" + RETURNS.format("Spanning"),
                              "physics", "two lines", "Spanning name 'two\\nlines' is not plain (letters, digits and "
                                                      "_ only)"),
    "unavailable() raises": (
        "class Probing(Morse):\n    @classmethod\n    def unavailable(cls):\n        raise OSError('no "
        "GPU\\nprobe')\n\n"
        + RETURNS.format("Probing"), "physics", "morse", "Probing.unavailable() raised OSError: no GPU probe"),
    "unavailable() exits": (
        "class Exiting(Morse):\n    @classmethod\n    def unavailable(cls):\n        raise SystemExit(4)\n\n"
        + RETURNS.format("Exiting"), "physics", "morse", "Exiting.unavailable() raised SystemExit: 4"),
    "unavailable() returns a non-reason": (
        "class Truthy(Morse):\n    @classmethod\n    def unavailable(cls):\n        return True\n\n"
        + RETURNS.format("Truthy"), "physics", "morse", "Truthy.unavailable() returned a bool, not a reason or None"),
    "a params default factory that raises": (
        "def no_depth():\n    raise RuntimeError('no depth\\ntoday')\n\n"
        "class Factory(MorseParams):\n    depth: float = Field(default_factory=no_depth)\n\n"
        "class Factored(Morse):\n    Params = Factory\n\n" + RETURNS.format("Factored"), "physics", "morse",
        "Factored raised RuntimeError: no depth today while it was checked"),
    "a params validator that exits": (
        "from pydantic import model_validator\n\n"
        "class Exits(MorseParams):\n    @model_validator(mode='after')\n    def leave(self):\n        raise "
        "SystemExit(6)\n\n"
        "class Leaving(Morse):\n    Params = Exits\n\n" + RETURNS.format("Leaving"), "physics", "morse",
        "Leaving raised SystemExit: 6 while it was checked"),
}


def flawed_plugin(install_distribution, body: str):
    """The distribution pivf-flawed, whose entry point 'flawed' is the Morse module followed by ``body``."""
    return install_distribution("pivf-flawed", {"pivf_flawed": textwrap.dedent(MORSE_HEADER) + body},
                                {"flawed": "pivf_flawed"})


def broken_line(stdout: str, name: str, reason: str) -> list[str]:
    """The lines of a ``pivf plugins`` table that show ``name`` broken for ``reason``."""
    return [line for line in stdout.splitlines() if f" {name} " in line and "broken" in line and line.endswith(reason)]


@pytest.mark.parametrize("case", list(FLAWED))
def test_a_plugin_failing_while_it_loads_is_one_broken_row_and_the_rest_works(case, install_distribution):
    body, kind, name, reason = FLAWED[case]
    flawed_plugin(install_distribution, body)
    with pytest.warns(PluginLoadWarning) as caught:
        rows = registry().rows()
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    broken = [(r.kind, r.name, r.status, r.error) for r in rows if r.distribution == "pivf-flawed"]
    assert broken == [(kind, name, "broken", reason)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        listed = runner.invoke(app, ["plugins"])
        shown = runner.invoke(app, ["config", "show", "--physics", "spring", "--integrator", "leapfrog"])
        with pytest.raises(UnknownPluginError, match="failed to load"):
            registry().get("physics", name)
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == len(rows) + 1
    assert len(broken_line(listed.stdout, name, reason)) == 1, listed.stdout
    assert shown.exit_code == 0 and "name: leapfrog" in shown.stdout


#: what a module does at import that used to end the process → its reason
EXITS = {"sys.exit(3)": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
         "KeyboardInterrupt": ("raise KeyboardInterrupt\n", "KeyboardInterrupt")}


@pytest.mark.slow(seconds=5)
@pytest.mark.parametrize("case", list(EXITS))
def test_a_plugin_exiting_at_import_leaves_the_console_script_working(case, install_distribution):
    body, reason = EXITS[case]
    root = flawed_plugin(install_distribution, body)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    for variable in (ALLOW_ENV, DENY_ENV, DISABLE_AUTOLOAD_ENV):
        env.pop(variable, None)
    listed = subprocess.run([sys.executable, "-m", "pivf.cli", "plugins"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert len(broken_line(listed.stdout, "flawed", reason)) == 1, listed.stdout
    assert listed.stderr.splitlines() == [f"warning: pivf plugin 'flawed' from pivf-flawed failed to load: {reason}"]


def test_a_ctrl_c_of_the_user_while_plugins_load_still_stops_pivf(install_distribution):
    flawed_plugin(install_distribution, "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n")
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        Registry()
    assert signal.getsignal(signal.SIGINT) is handler


#: setting → (its value, what the error then says about the hidden plugin)
HIDING = {
    ALLOW_ENV: ("charged_particles", "the plugin 'morse' from pivf-morse is hidden by PIVF_PLUGINS=charged_particles"),
    DENY_ENV: ("morse", "the plugin 'morse' from pivf-morse is hidden by PIVF_DISABLE_PLUGINS=morse"),
    DISABLE_AUTOLOAD_ENV: ("1", "the plugin 'morse' from pivf-morse is hidden by PIVF_DISABLE_PLUGIN_AUTOLOAD=1"),
}


@pytest.mark.parametrize("variable", list(HIDING))
def test_an_unknown_name_says_which_setting_hid_the_plugin_of_that_name(variable, install_distribution, monkeypatch):
    value, hint = HIDING[variable]
    install_distribution("pivf-morse", {"pivf_morse": textwrap.dedent(MORSE_HEADER) + RETURNS.format("Morse")},
                         {"morse": "pivf_morse"})
    assert runner.invoke(app, ["config", "show", "--physics", "morse"]).exit_code == 0
    monkeypatch.setenv(variable, value)
    reset_registry()
    hidden = runner.invoke(app, ["config", "show", "--physics", "morse"])
    lines = hidden.stderr.splitlines()
    assert hidden.exit_code == 2 and len(lines) == 1, hidden.stderr
    assert lines[0].startswith(f"error: physics.name: unknown physics 'morse'; {hint}; available: bouncing, "), lines


def test_an_unknown_name_counts_what_each_setting_hid(monkeypatch):
    monkeypatch.setenv(DENY_ENV, "physics_spring,physics_gravity")
    with pytest.raises(UnknownPluginError) as err:
        registry().get("physics", "spring")
    assert "; PIVF_DISABLE_PLUGINS=physics_spring,physics_gravity hides 2 installed plugins, which may provide it; " \
           "available: bouncing, " in str(err.value)
