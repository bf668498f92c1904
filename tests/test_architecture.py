"""Imports flow one way: data/models/generative → strategies → oracles → loop →
experiments/server → cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "activegen"

#: For each part, the parts it must never import (at module level or inside functions).
FORBIDDEN = {
    "data": ("models", "generative", "strategies", "oracles", "loop", "experiments", "server",
             "cli"),
    "models": ("strategies", "oracles", "loop", "experiments", "server", "cli"),
    "generative": ("strategies", "oracles", "loop", "experiments", "server", "cli"),
    "strategies": ("oracles", "loop", "experiments", "server", "cli"),
    "oracles": ("loop", "experiments", "server", "cli"),
    "loop": ("experiments", "server", "cli"),
    "experiments": ("server", "cli"),
    "server": ("cli",),
    "stopping": ("models", "generative", "strategies", "oracles", "loop", "experiments",
                 "server", "cli"),
}


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.startswith("activegen."):
                parts.add(name.split(".")[1])
    return parts


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path: Path) -> None:
    part = _part(path)
    bad = _imported_parts(path) & set(FORBIDDEN.get(part, ()))
    assert not bad, f"{path.relative_to(SRC)} ({part}) imports {sorted(bad)}"


def test_the_check_sees_imports() -> None:
    assert "strategies" in _imported_parts(SRC / "loop.py")
    assert "models" in _imported_parts(SRC / "strategies" / "base.py")
