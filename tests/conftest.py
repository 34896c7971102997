"""Shared fixtures: a fresh plugin registry per test and real on-disk distributions for plugin tests.

The suite runs in parallel (``-n auto`` in pyproject.toml, pytest-xdist): each worker gets an equal
share of the CPU cores for torch and for the processes its tests start, and the slow tests start
first, longest first, so the longest one does not begin near the end of the run."""
from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pivf.core.kernel.registry import reset_registry


def worker_threads() -> int:
    """This worker's share of the machine's cores (all of them without pytest-xdist)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers)


def pytest_configure(config: pytest.Config) -> None:
    """Processes a test starts (the CLI) use this worker's share of the cores, not all of them."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(worker_threads())
        torch.set_num_threads(worker_threads())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, by their declared cost (``@pytest.mark.slow(seconds=...)``), longest first.
    In a parallel run a worker is sent one test at a time (``--maxschedchunk 1``) but always holds
    the test after the one it runs, so the longest test is followed by a short one: nothing long
    waits behind it while the other workers take the rest in turn."""
    def cost(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return -1.0 if marker is None else float(marker.kwargs.get("seconds", 0))
    items.sort(key=cost, reverse=True)
    if len(items) > 2:
        items.insert(1, items.pop())


@pytest.fixture
def calibrated_threads():
    """This worker's share of the cores (two on CI without parallel workers), whatever earlier tests
    left set."""
    threads = torch.get_num_threads()
    torch.set_num_threads(worker_threads())
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
