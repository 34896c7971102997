"""The plugin guide keeps up with the contract: every hook, and every member a base class offers a
plugin, is named in docs/plugins.md (a new one fails here until it is documented)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pivf import api
from pivf.core.kernel.hookspecs import BASE_OF_KIND, HOOK_OF_KIND

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
#: members every plugin class has, documented once for all kinds
COMMON = {"kind", "name", "description", "Params", "required_methods"}


@pytest.mark.parametrize("hook", HOOK_OF_KIND.values())
def test_every_hook_is_documented(hook):
    assert f"`{hook}`" in GUIDE


@pytest.mark.parametrize("kind", HOOK_OF_KIND)
def test_every_contract_member_is_documented(kind):
    base = getattr(api, BASE_OF_KIND[kind].rpartition(".")[2])
    members = [name for name in vars(base) if not name.startswith("_") and name not in COMMON]
    undocumented = [name for name in members if f"`{name}`" not in GUIDE and f"`{name}(" not in GUIDE]
    assert not undocumented, f"{base.__name__}: document {undocumented} in docs/plugins.md"
