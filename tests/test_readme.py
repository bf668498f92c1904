"""The README's "Use it from Python" example runs as written (so it cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str) -> str:
    text = README.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"no python block under '## {title}'"
    return "\n".join(blocks)


def test_use_it_from_python_example_runs(capsys) -> None:
    code = _section_code("Use it from Python")
    assert "load_breast_cancer" in code and "make_pipeline" in code  # the tabular example
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "80" in out
    assert "60 {'held-out'" in out  # the tabular pool ran to its budget
