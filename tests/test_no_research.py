"""No test reads the repository's research folder: it is the record of a study, kept outside
the package, and may change or go without the product noticing. Tests read product files
(``configs/``, ``docs/``, the package) and their own data only."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# Built from parts, so that this file does not match itself.
FOLDER = "re" + "search"
#: a path into the folder (FOLDER + "/..."), or the folder as a path part (REPO / FOLDER)
PATTERNS = [re.compile(rf"\b{FOLDER}/"), re.compile(rf"""["']{FOLDER}["']""")]


def mentions(text: str) -> list[int]:
    """The line numbers of ``text`` that name the research folder."""
    return [i for i, line in enumerate(text.splitlines(), start=1)
            if any(p.search(line) for p in PATTERNS)]


def test_no_test_names_the_research_folder() -> None:
    found = {}
    for path in sorted(TESTS.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            lines = mentions(path.read_text(errors="ignore"))
            if lines:
                found[str(path.relative_to(TESTS))] = lines
    assert not found, f"tests that name the research folder (file: lines): {found}"


def test_the_check_finds_both_ways_of_naming_it() -> None:
    sample = "\n".join([
        "ok = REPO / 'configs' / 'gaal-mnist10k.toml'",
        f'bad = REPO / "{FOLDER}" / "configs"',
        f"table = pd.read_csv('{FOLDER}/gaal/results/x.csv.gz')",
        "researchers = 3  # a word, not the folder",
    ])
    assert mentions(sample) == [2, 3]


def test_the_gaal_guide_stays_a_guide() -> None:
    """docs/gaal.md is what a user needs (at most 300 lines); the study's record lives in the
    research folder it links to."""
    guide = TESTS.parent / "docs" / "gaal.md"
    assert len(guide.read_text().splitlines()) <= 300
