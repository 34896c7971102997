"""Plugins are typed by their params model: the base's type argument is what params are validated
with at run time and what a type checker knows ``self.params`` to be; pivf itself type-checks clean."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import Field

from pivf.core.kernel.errors import PluginParamsError
from pivf.core.kernel.physics import ObjectParams, PhysicsSystem
from pivf.core.kernel.plugin import contract_problems

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


class BondParams(ObjectParams):
    depth: float = Field(1.0, gt=0)


class OtherParams(ObjectParams):
    width: float = Field(2.0, gt=0)


class Bond(PhysicsSystem[BondParams]):
    name = "bond"
    description = "a test bond"

    def hamiltonian(self, q, p):
        return self.params.depth * (q**2).sum((-1, -2)) + (p**2).sum((-1, -2))


class WiderBond(Bond):
    Params = OtherParams


def test_the_type_argument_is_the_params_model():
    assert Bond.Params is BondParams
    assert Bond(BondParams(depth=3.0)).params.depth == 3.0
    assert Bond({"depth": 2.0}).params.depth == 2.0
    with pytest.raises(PluginParamsError, match="physics 'bond': depth"):
        Bond({"depth": -1.0})
    assert contract_problems(Bond, PhysicsSystem) == []


def test_an_explicit_params_model_wins_and_is_inherited():
    assert WiderBond.Params is OtherParams
    assert WiderBond().params == OtherParams()

    class Subclass(WiderBond):
        name = "sub"

    assert Subclass.Params is OtherParams


THIRD_PARTY = '''
from pydantic import Field
from torch import Tensor

from pivf.core.kernel.physics import ObjectParams, PhysicsSystem


class MorseParams(ObjectParams):
    depth: float = Field(1.0, gt=0)


class Morse(PhysicsSystem[MorseParams]):
    name = "morse"
    description = "a Morse bond"

    def dq_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return p * self.params.depth

    def dp_dt(self, q: Tensor, p: Tensor) -> Tensor:
        return q * self.params.widht
'''


@pytest.mark.slow(seconds=26)
def test_pivf_type_checks_clean_and_a_plugins_params_are_typed(tmp_path):
    """One mypy run over the installed package and a third-party plugin with a misspelt field."""
    pytest.importorskip("mypy")
    plugin = tmp_path / "morse_plugin.py"
    plugin.write_text(textwrap.dedent(THIRD_PARTY))
    # the checkout's package files, not an installed copy (mypy keeps quiet about errors in site-packages)
    package = tmp_path / "src" / "pivf"
    package.mkdir(parents=True)
    for part in PYPROJECT.parent.iterdir():
        if part.suffix == ".py" or part.name in ("core", "plugins", "cli", "py.typed"):
            (package / part.name).symlink_to(part)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), "--cache-dir", str(tmp_path / "cache"),
         "-p", "pivf", "-p", plugin.stem], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(tmp_path / "src")})
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith(f"{plugin.name}:") and '"MorseParams" has no attribute "widht"' in errors[0]
