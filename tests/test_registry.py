"""Plugin discovery through real entry points: built-ins, third-party, broken and conflicting plugins."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
from typer.testing import CliRunner

import pivf
from pivf.cli.main import app
from pivf.core.kernel.errors import PluginConflictError, PluginParamsError, UnknownPluginError
from pivf.core.kernel.registry import (
    ALLOW_ENV,
    DENY_ENV,
    DISABLE_AUTOLOAD_ENV,
    PluginLoadWarning,
    registry,
    reset_registry,
)

runner = CliRunner()

BUILTINS = {
    "integrator": {"euler", "leapfrog", "yoshida", "rk4", "dopri5"},
    "physics": {"spring", "gravity", "pendulum", "bouncing", "mass_spring", "damped_spring", "hamiltonian",
                "hamiltonian_latent"},
    "decoder": {"spatial_transformer"},
    "encoder": {"paig_unet"},
}

BROKEN = {"pivf_broken_plugin": "raise ImportError('needs a library that is not installed')\n"}

DUPLICATE_EULER = {
    "pivf_dup_euler": """
        import pivf
        from pivf.core.kernel.integrator import Integrator

        class OtherEuler(Integrator):
            name = "euler"
            description = "a second euler"

            def step(self, physics, q, p, h):
                p = p + h * physics.dp_dt(q, p)
                return q + h * physics.dq_dt(q, p), p

        @pivf.hookimpl
        def pivf_integrators():
            return [OtherEuler]
    """
}


def test_builtins_are_listed_with_kind_and_provider():
    rows = pivf.list_plugins()
    for kind, names in BUILTINS.items():
        found = {r["name"] for r in rows if r["kind"] == kind and r["distribution"] == "pivf" and r["status"] == "ok"}
        assert names <= found, f"missing {kind}: {names - found}"
    assert all(r["description"] for r in rows)


def test_plugins_json_cli_lists_builtins():
    result = runner.invoke(app, ["plugins", "--json", "--kind", "integrator"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["kind"] for r in rows} == {"integrator"}
    assert BUILTINS["integrator"] <= {r["name"] for r in rows}


def test_generic_top_level_modules_are_not_importable(tmp_path):
    code = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('core', 'plugins', 'cli')))"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path).returncode == 0
    check = "import pivf.core, pivf.plugins.physics, pivf.plugins.integrators, pivf.plugins.decoders, pivf.cli"
    assert subprocess.run([sys.executable, "-c", check], cwd=tmp_path).returncode == 0


def test_unknown_name_lists_available_with_hint():
    with pytest.raises(UnknownPluginError) as err:
        pivf.integrator("eulr")
    message = str(err.value)
    assert "did you mean 'euler'" in message and "available:" in message and "leapfrog" in message
    assert "\n" not in message


def test_bad_params_name_the_field():
    with pytest.raises(PluginParamsError, match=r"integrator 'euler': substeps: Input should be greater than or equal "
                                                r"to 1"):
        pivf.integrator("euler", substeps=0)
    with pytest.raises(PluginParamsError, match=r"subtseps: unknown field \(allowed: substeps\)"):
        pivf.integrator("euler", subtseps=3)


def test_broken_plugin_is_reported_and_the_rest_works(install_distribution):
    install_distribution("pivf-broken", BROKEN, {"broken": "pivf_broken_plugin"})
    with pytest.warns(PluginLoadWarning, match="'broken' from pivf-broken failed to load"):
        rows = registry().rows()
    broken = [r for r in rows if r.status == "broken"]
    assert len(broken) == 1 and "needs a library that is not installed" in broken[0].error
    assert pivf.integrator("euler").substeps == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0
    assert any("broken" in line and "not installed" in line for line in result.stdout.splitlines())


def test_two_providers_of_one_name_are_an_error_naming_both(install_distribution):
    install_distribution("pivf-dup", DUPLICATE_EULER, {"dup": "pivf_dup_euler"})
    with pytest.raises(PluginConflictError, match=r"integrator 'euler' is provided by both pivf 0\.1\.0 and pivf-dup "
                                                  r"0\.1"):
        pivf.integrator("euler")
    assert pivf.integrator("leapfrog") is not None


def test_env_var_disables_third_party_autoload(install_distribution, monkeypatch):
    install_distribution("pivf-broken", BROKEN, {"broken": "pivf_broken_plugin"})
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        rows = registry().rows()
    assert {r.distribution for r in rows} == {"pivf"}
    with pytest.raises(UnknownPluginError):
        pivf.physics("charged_particles")


# --- flawed plugins are caught when they load --------------------------------------------------------

MORSE_HEADER = """
    import torch
    from pydantic import BaseModel, Field

    import pivf
    from pivf.core.kernel.physics import ObjectParams, PhysicsSystem


    class MorseParams(ObjectParams):
        depth: float = Field(1.0, gt=0)


    class Morse(PhysicsSystem):
        name = "morse"
        description = "a Morse-potential bond"
        Params = MorseParams

        def hamiltonian(self, q, p):
            return 0.5 * (p ** 2).sum((-2, -1)) + self.params.depth * (q ** 2).sum((-2, -1))
"""

#: case → (module body after the header, kind of the broken row, its name, what the reason says)
FLAWED = {
    "misspelled hook": ("@pivf.hookimpl\ndef pivf_physic():\n    return [Morse]\n", "?", "flawed",
                        "unknown hook 'pivf_physic' (did you mean 'pivf_physics'?)"),
    "hookimpl left off": ("def pivf_physics():\n    return [Morse]\n", "?", "flawed",
                          "'pivf_physics' is not marked with @pivf.hookimpl, so it is never called"),
    "default violates its field": (
        "class Bad(MorseParams):\n    depth: float = Field(-1.0, gt=0)\n\n"
        "class BadMorse(Morse):\n    Params = Bad\n\n"
        "@pivf.hookimpl\ndef pivf_physics():\n    return [BadMorse]\n", "physics", "morse",
        "BadMorse the default of depth is invalid: Input should be greater than 0"),
    "plain pydantic params": (
        "class Loose(BaseModel):\n    depth: float = 1.0\n\n"
        "class LooseMorse(Morse):\n    Params = Loose\n\n"
        "@pivf.hookimpl\ndef pivf_physics():\n    return [LooseMorse]\n", "physics", "morse",
        "Params must subclass pivf.core.kernel.plugin.PluginParams"),
    "no equations of motion": (
        "class Still(PhysicsSystem):\n    name = 'morse'\n    description = 'nothing moves'\n\n"
        "@pivf.hookimpl\ndef pivf_physics():\n    return [Still]\n", "physics", "morse",
        "defines none of hamiltonian or dq_dt/dp_dt"),
    "wrong base class": ("@pivf.hookimpl\ndef pivf_integrators():\n    return [Morse]\n", "integrator", "morse",
                         "is not a subclass of pivf.core.kernel.integrator.Integrator"),
    "hook raises": ("@pivf.hookimpl\ndef pivf_physics():\n    raise RuntimeError('no licence')\n", "physics",
                    "flawed", "pivf_physics() raised RuntimeError: no licence"),
}


@pytest.mark.parametrize("case", list(FLAWED))
def test_a_flawed_plugin_is_one_broken_row_with_its_kind_and_the_rest_works(case, install_distribution):
    body, kind, name, reason = FLAWED[case]
    install_distribution("pivf-flawed", {"pivf_flawed": textwrap.dedent(MORSE_HEADER) + body},
                         {"flawed": "pivf_flawed"})
    with pytest.warns(PluginLoadWarning) as caught:
        rows = registry().rows()
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    broken = [r for r in rows if r.status == "broken"]
    assert [(r.kind, r.name) for r in broken] == [(kind, name)] and reason in broken[0].error, broken
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        listed = runner.invoke(app, ["plugins", "--kind", "physics" if kind == "?" else kind])
        assert pivf.integrator("euler").substeps == 5 and pivf.physics("spring") is not None
        with pytest.raises(UnknownPluginError, match="'morse'.* failed to load"):
            registry().get("physics" if kind == "?" else kind, "morse")
    assert listed.exit_code == 0 and any(name in line and "broken" in line for line in listed.stdout.splitlines())


def test_the_cli_warns_about_a_broken_plugin_in_one_line(install_distribution, tmp_path):
    install_distribution("pivf-flawed", {"pivf_flawed": textwrap.dedent(MORSE_HEADER) + FLAWED["hookimpl left off"][0]},
                         {"flawed": "pivf_flawed"})
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    warning_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning_lines == ["warning: pivf plugin 'flawed' from pivf-flawed failed to load: 'pivf_physics' is not "
                             "marked with @pivf.hookimpl, so it is never called"]


MORSE_TASK = """
    import pivf
    from pivf.core.data.task import Task

    class MorseTask(Task):
        name = "morse_color"
        description = "two balls bonded by a Morse potential"
        physics = "no_such_physics_module"
"""


def test_an_error_about_a_plugin_that_failed_to_load_says_so(install_distribution):
    body = "\n    @pivf.hookimpl\n    def pivf_tasks():\n        return [MorseTask]\n"
    install_distribution("pivf-morse", {"pivf_morse": MORSE_TASK + body}, {"morse": "pivf_morse"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        result = runner.invoke(app, ["config", "show", "--task", "morse_color"])
    assert result.exit_code == 2
    assert ("error: data.task: task 'morse_color' from pivf-morse failed to load: MorseTask defines none of "
            "sample_initial/render or simulate/render") in result.stderr
    assert "did you mean" not in result.stderr


def test_a_name_clash_with_a_builtin_is_settled_by_the_deny_list(install_distribution, monkeypatch):
    install_distribution("pivf-dup", DUPLICATE_EULER, {"dup": "pivf_dup_euler"})
    clash = runner.invoke(app, ["config", "show", "--integrator", "euler"])
    assert clash.exit_code == 2 and f"{DENY_ENV}=" in clash.stderr and "pivf-dup 0.1" in clash.stderr
    assert runner.invoke(app, ["config", "show", "--integrator", "leapfrog"]).exit_code == 0
    for pick, provider in (("pivf-dup", "pivf"), ("integrator_euler", "pivf-dup")):
        monkeypatch.setenv(DENY_ENV, pick)
        reset_registry()
        rows = [r for r in pivf.list_plugins("integrator") if r["name"] == "euler"]
        assert [(r["distribution"], r["status"]) for r in rows] == [(provider, "ok")]
        assert runner.invoke(app, ["config", "show", "--integrator", "euler"]).exit_code == 0


def test_the_allow_list_loads_only_the_third_party_plugins_it_names(install_distribution, monkeypatch):
    install_distribution("pivf-broken", BROKEN, {"broken": "pivf_broken_plugin"})
    monkeypatch.setenv(ALLOW_ENV, "charged_particles")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        third_party = {r["distribution"] for r in pivf.list_plugins()} - {"pivf"}
    assert third_party <= {"pivf-charged-particles"}


def test_a_plugin_that_cannot_run_here_is_listed_unavailable_with_its_reason():
    from pivf.core.kernel.physics import PhysicsSystem
    from pivf.testing import registered

    class NeedsAnEngine(PhysicsSystem):
        name = "needs_an_engine"
        description = "simulated by an engine this machine lacks"

        @classmethod
        def unavailable(cls):
            return "the engine is not installed (pip install engine)"

        def dq_dt(self, q, p):
            return p

        def dp_dt(self, q, p):
            return -q

    with registered(NeedsAnEngine):
        row = next(r for r in registry().rows("physics") if r.name == "needs_an_engine")
        assert (row.status, row.error) == ("unavailable", "the engine is not installed (pip install engine)")
        assert "needs_an_engine" not in registry().names("physics")
        with pytest.raises(UnknownPluginError, match="physics 'needs_an_engine' is unavailable here: the engine is "
                                                     "not"):
            pivf.physics("needs_an_engine")
        listed = runner.invoke(app, ["plugins", "--kind", "physics"])
        assert any("unavailable" in line and "pip install engine" in line for line in listed.stdout.splitlines())
