"""Imports flow one way: data/models/generative → strategies → oracles → engine → loop →
experiments/server → cli, and no module imports one that imports it back. Inside ``server``:
config → core → interop → images → opening → web → run, and ``core`` speaks no HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "activegen"

#: For each part, the parts it must never import (at module level or inside functions).
FORBIDDEN = {
    "data": ("models", "generative", "strategies", "oracles", "engine", "loop", "experiments",
             "server", "cli"),
    "models": ("strategies", "oracles", "engine", "loop", "experiments", "server", "cli"),
    "generative": ("strategies", "oracles", "engine", "loop", "experiments", "server", "cli"),
    "strategies": ("oracles", "engine", "loop", "experiments", "server", "cli"),
    "oracles": ("engine", "loop", "experiments", "server", "cli"),
    "engine": ("loop", "experiments", "server", "cli"),
    "loop": ("experiments", "server", "cli"),
    "experiments": ("server", "cli"),
    "server": ("cli",),
    # the server's own layers (a module of server/<layer>/ or server/<layer>.py)
    "server.config": ("server.core", "server.interop", "server.images", "server.opening",
                      "server.web", "server.run"),
    "server.core": ("server.interop", "server.images", "server.opening", "server.web",
                    "server.run"),
    "server.interop": ("server.images", "server.opening", "server.web", "server.run"),
    "server.images": ("server.opening", "server.web", "server.run"),
    "server.opening": ("server.web", "server.run"),
    "server.web": ("server.images", "server.opening", "server.run"),
    "stopping": ("models", "generative", "strategies", "oracles", "loop", "experiments",
                 "server", "cli"),
}


def _part(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    if rel[0] == "server" and len(rel) > 1 and rel[1] != "__init__.py":
        return "server." + rel[1].removesuffix(".py")
    return rel[0].removesuffix(".py")


def _imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _imported_parts(path: Path) -> set[str]:
    parts = set()
    for name in _imported_names(path):
        if name.startswith("activegen."):
            dotted = name.split(".")
            parts.add(dotted[1])
            if dotted[1] == "server" and len(dotted) > 2:
                parts.add("server." + dotted[2])
    return parts


def _forbidden(part: str) -> set[str]:
    general = FORBIDDEN.get(part.split(".")[0], ()) if "." in part else ()
    return set(FORBIDDEN.get(part, ())) | set(general)


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path: Path) -> None:
    part = _part(path)
    bad = _imported_parts(path) & _forbidden(part)
    assert not bad, f"{path.relative_to(SRC)} ({part}) imports {sorted(bad)}"


#: What speaks HTTP; the session's core must not (its refusals are exceptions, mapped to
#: statuses once, in server.web).
HTTP_PACKAGES = ("fastapi", "starlette", "uvicorn", "httpx")


@pytest.mark.parametrize("path", sorted((SRC / "server" / "core").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_the_session_core_speaks_no_http(path: Path) -> None:
    http = [n for n in _imported_names(path) if n.split(".")[0] in HTTP_PACKAGES]
    assert not http, f"{path.relative_to(SRC)} imports {http}"


@pytest.mark.parametrize("path", sorted((SRC / "server").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_the_server_probes_no_attribute(path: Path) -> None:
    """What a learner can do is a capability (``has_capability``), what a session offers a
    typed field: never ``getattr`` / ``hasattr``."""
    calls = [node.func.id for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("getattr", "hasattr")]
    assert not calls, f"{path.relative_to(SRC)} calls {calls}"


def test_the_check_sees_imports() -> None:
    assert "strategies" in _imported_parts(SRC / "loop.py")
    assert "models" in _imported_parts(SRC / "strategies" / "base.py")
    assert "server.core" in _imported_parts(SRC / "server" / "web" / "app.py")
    assert _part(SRC / "server" / "core" / "store.py") == "server.core"
    assert _part(SRC / "server" / "opening.py") == "server.opening"
    assert "server.web" in _forbidden("server.core") and "cli" in _forbidden("server.core")


# -- no import cycle ----------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the activegen modules it imports anywhere in its source (functions too).

    ``from package import submodule`` is an edge to the submodule only; the implicit import of
    a parent package is not an edge (every submodule would otherwise cycle with its package).
    """
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                rest = [a for a in node.names if f"{node.module}.{a.name}" not in modules]
                edges |= subs
                if rest and node.module in modules:
                    edges.add(node.module)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, f"import cycles: {[sorted(c) for c in found]}"


def test_the_cycle_check_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    graph = import_graph()
    assert "activegen.strategies.base" in graph["activegen.strategies"]
    assert "activegen.engine" in graph["activegen.loop"]
    assert "activegen.experiments.executors" in graph["activegen.experiments.runner"]
    # Imports inside functions count: the executors' workers import the run function.
    assert "activegen.experiments.one_run" in graph["activegen.experiments.executors"]
