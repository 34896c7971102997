"""Plugin discovery through real entry points: built-ins, third-party, broken and conflicting plugins."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
from typer.testing import CliRunner

import pivf
from pivf.cli.main import app
from pivf.core.errors import PluginConflictError, PluginParamsError, UnknownPluginError
from pivf.core.registry import DISABLE_AUTOLOAD_ENV, PluginLoadWarning, registry

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
        from pivf.core.integrator import Integrator

        class OtherEuler(Integrator):
            name = "euler"
            description = "a second euler"

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
    with pytest.raises(PluginParamsError, match=r"integrator 'euler': substeps: Input should be greater than or equal to 1"):
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
    with pytest.raises(PluginConflictError, match=r"integrator 'euler' is provided by both pivf 0\.1\.0 and pivf-dup 0\.1"):
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
