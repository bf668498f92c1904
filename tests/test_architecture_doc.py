"""docs/architecture.md matches the code: its module map names only modules that exist, and
every module of the package is in it (itself, or a package above it that the map names)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "activegen"
DOC = ROOT / "docs" / "architecture.md"


def modules() -> set[str]:
    """Every module and package of activegen, dotted, relative to the package."""
    names = set()
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add(".".join(parts))
    return names


def mapped() -> set[str]:
    """The names in the first column of the module map (the table of parts)."""
    names = set()
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| ([^|]+) \|", line)
        if match:
            names |= set(re.findall(r"`([A-Za-z_][\w.]*)`", match.group(1)))
    return names


def test_the_map_names_only_modules_that_exist() -> None:
    missing = sorted(mapped() - modules())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_module_is_in_the_map() -> None:
    names = mapped()

    def covered(module: str) -> bool:
        parts = module.split(".")
        if any(".".join(parts[:i]) in names for i in range(1, len(parts) + 1)):
            return True
        return any(name.startswith(module + ".") for name in names)  # a package, by its parts

    absent = sorted(m for m in modules() if not covered(m))
    assert not absent, f"modules missing from docs/architecture.md's module map: {absent}"


def test_the_checks_see_the_map() -> None:
    assert {"engine", "experiments.runner", "_atomic"} <= mapped()
    assert "experiments.executors" in modules()
