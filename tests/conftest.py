"""Shared fixtures: a fresh plugin registry per test and real on-disk distributions for plugin tests."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pivf.core.registry import reset_registry


@pytest.fixture
def calibrated_threads():
    """Two CPU threads, as CI's two cores, which the learning tests' time budgets were measured
    with (other tests may leave fewer set)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test sees exactly the plugins installed (or faked) while it runs."""
    reset_registry()
    yield
    reset_registry()


def _write_distribution(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[pivf]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def install_distribution(tmp_path, monkeypatch):
    """Make a real distribution (dist-info with entry points) importable for this test only."""
    added: list[str] = []

    def install(dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
        root = tmp_path / dist
        _write_distribution(root, dist, modules, entry_points)
        monkeypatch.syspath_prepend(str(root))
        added.extend(modules)
        importlib.invalidate_caches()
        reset_registry()
        return root

    yield install
    for module in added:
        sys.modules.pop(module, None)
