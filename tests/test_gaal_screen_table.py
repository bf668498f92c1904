"""scripts/gaal_screen_table.py: refusal rates and areas from a results table, best area first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _rows(strategy: str, accs: list[float], abstained: list[int]) -> list[dict]:
    rows = []
    for seed in (0, 1):
        n_train = 4
        for r, (acc, ab) in enumerate(zip(accs, abstained, strict=True)):
            rows.append({"dataset": "d", "strategy": strategy, "seed": seed, "round": r,
                         "n_labels": 4 + 2 * r, "test_set": "t", "accuracy": acc,
                         "n_classes": 2, "n_train": n_train, "n_abstained": ab,
                         "fit_seconds": 0.0, "query_seconds": 0.0, "label_seconds": 0.0})
            if r + 1 < len(abstained):
                n_train += 2 - (abstained[r + 1] - ab)
    return rows


def test_table_reports_refusals_and_sorts_by_area(tmp_path: Path) -> None:
    rows = (_rows("low", [0.5, 0.55, 0.6], [0, 0, 0])
            + _rows("high", [0.5, 0.9, 1.0], [0, 1, 3]))  # 3 of 4 queries refused per seed
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gaal_screen_table.py"),
                          str(tmp_path)], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": ""}).stdout
    lines = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [line.split(" | ")[0] for line in lines[1:]] == ["| high", "| low"]
    high, low = (line.rstrip(" |").split(" | ") for line in lines[1:3])
    assert high[2] == "6/8 (0.750)" and low[2] == "0/8 (0.000)"
    assert float(high[3]) > float(low[3])
    assert high[4] == "1.0000" and low[4] == "0.6000"
