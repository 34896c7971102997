"""Plugins see pivf through one door, ``pivf.api``, and pivf's inside is layered: pivf's own plugins
and the example package import nothing from ``pivf.core``, every ``__all__`` names what exists, every
module of core lives in a room and imports no room above its own (core/__init__.py), no module of
core imports (at load or inside a function) a module that imports it back, and every package folder
is one the wheel holds."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from pivf import api
from pivf.core.kernel.hookspecs import BASE_OF_KIND

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted(path for path in [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
                        if "build" not in path.relative_to(ROOT).parts)  # a local wheel build's copies
CORE_SOURCES = sorted((ROOT / "core").rglob("*.py"))


def defines_names(path: Path) -> bool:
    """Whether a module holds more than a docstring (an empty package ``__init__`` has no names to list)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


NAMING_MODULES = [path for path in [*CORE_SOURCES, *sorted((ROOT / "plugins").rglob("*.py"))] if defines_names(path)]


def module_name(path: Path) -> str:
    parts = ("pivf", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, *, type_hints: bool = False) -> set[str]:
    """Every module ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks never do; they count
    with ``type_hints``), with ``from a import b`` counted as both ``a`` and ``a.b`` (b may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = set() if type_hints else {
        id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
        and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in block.body for node in ast.walk(statement)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def core_graph(*, type_hints: bool = False) -> dict[str, set[str]]:
    modules = {module_name(path): path for path in CORE_SOURCES}
    return {name: {m for m in imported_modules(path, type_hints=type_hints) if m in modules and m != name}
            for name, path in modules.items()}


#: core's rooms and their layers (core/__init__.py): a module imports from its own layer and those
#: below, never above; '' is ``pivf.core`` itself, a docstring
LAYER_OF_ROOM = {"": 0, "kernel": 0, "data": 0, "training": 1, "apps": 2}


def room(module: str) -> str:
    """``pivf.core.<room>.…`` → the room, '' for ``pivf.core``."""
    return module.split(".")[2] if module.count(".") > 1 else ""


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{name} imports {imported}" for name, imports in graph.items() for imported in imports
                  if LAYER_OF_ROOM[room(imported)] > LAYER_OF_ROOM[room(name)])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """A path back to its start for each module that can reach itself."""
    found = []
    for start in sorted(graph):
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop()
            for nxt in sorted(graph[path[-1]]):
                if nxt == start:
                    found.append([*path, start])
                    paths = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    paths.append([*path, nxt])
    return found


def declared_all(module: object) -> list[str]:
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module.__name__} declares no __all__"  # type: ignore[attr-defined]
    return list(names)


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_and_the_example_import_nothing_from_core(path):
    inside = sorted(m for m in imported_modules(path) if m == "pivf.core" or m.startswith("pivf.core."))
    assert not inside, f"{path.relative_to(ROOT)} imports {inside}: import it from pivf.api"


def test_the_checker_sees_imports_at_any_depth(tmp_path):
    source = tmp_path / "plugin.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pivf.core.kernel.model\n"
                      "def f():\n    from pivf.core.kernel.losses import frame_sse\n    import pivf.core.kernel.nn\n")
    assert imported_modules(source) == {"typing", "typing.TYPE_CHECKING", "pivf.core.kernel.losses",
                                        "pivf.core.kernel.losses.frame_sse", "pivf.core.kernel.nn"}


def test_api_exports_exactly_what_it_names():
    names = declared_all(api)
    assert len(names) == len(set(names))
    assert [name for name in names if not hasattr(api, name)] == []
    public = {name for name in vars(api) if not name.startswith("_") and name != "annotations"}
    assert public == set(names)


@pytest.mark.parametrize("kind", BASE_OF_KIND)
def test_each_kinds_base_is_exported_under_the_name_the_registry_checks(kind):
    base = getattr(api, BASE_OF_KIND[kind].rpartition(".")[2])
    assert (f"{base.__module__}.{base.__qualname__}", base.kind) == (BASE_OF_KIND[kind], kind)


@pytest.mark.parametrize("path", NAMING_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_all_entry_exists(path):
    module = importlib.import_module(module_name(path))
    assert [name for name in declared_all(module) if not hasattr(module, name)] == []


def test_every_module_of_core_lives_in_a_room():
    assert [name for name in core_graph() if room(name) not in LAYER_OF_ROOM] == []


def test_no_module_of_core_imports_a_room_above_its_own():
    """Not even for type hints: the kernel and data read without training, training without the apps."""
    assert upward_imports(core_graph(type_hints=True)) == []


def test_the_layer_check_finds_upward_imports():
    graph = {"pivf.core.kernel.build": {"pivf.core.data.generate", "pivf.core.training.runs"},
             "pivf.core.data.generate": {"pivf.core.kernel.atomic"},
             "pivf.core.training.train": {"pivf.core.kernel.build", "pivf.core.apps.compare"},
             "pivf.core.apps.compare": {"pivf.core.training.train"}}
    assert upward_imports(graph) == ["pivf.core.kernel.build imports pivf.core.training.runs",
                                     "pivf.core.training.train imports pivf.core.apps.compare"]


def test_the_checker_counts_type_hints_when_asked(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pivf.core.apps.control\n")
    assert "pivf.core.apps.control" not in imported_modules(source)
    assert "pivf.core.apps.control" in imported_modules(source, type_hints=True)


def test_every_package_folder_is_listed_for_the_wheel():
    """A wheel holds only the packages pyproject.toml lists: a folder left out is missing from every
    non-editable install while the checkout's tests pass."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    sources = [ROOT / "__init__.py",
               *(path for folder in ("core", "plugins", "cli") for path in (ROOT / folder).rglob("*.py"))]
    assert sorted({module_name(path.parent / "__init__.py") for path in sources} - set(listed)) == []


def test_core_has_no_import_cycle():
    assert cycles(core_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"]]
