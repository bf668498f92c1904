"""``activegen report DIR --screen``: refusals, areas and accuracy at the budget per strategy,
checked against a hand computation on a small table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from activegen.cli import main

#: accuracy at 10, 20, 30 charged labels, the same at both seeds: (test set "same", "shifted")
CURVES = {
    "random": ([0.6, 0.7, 0.8], [0.6, 0.6, 0.6]),
    "gaal": ([0.6, 0.6, 0.7], [0.6, 0.8, 0.8]),
    "svm-active": ([0.6, 0.8, 0.9], [0.6, 0.7, 0.7]),
    "gaal-short": ([0.6, 0.6, 0.6], [0.6, 0.6, 0.6]),  # seed 1 ends after round 1
}
#: (n_train, n_abstained) after each round, per strategy: refusals are the running total
COUNTS = {
    "random": [(10, 0), (20, 0), (30, 0)],
    "svm-active": [(10, 0), (20, 0), (30, 0)],
    "gaal": [(10, 0), (16, 4), (20, 10)],  # asked 10 + 10, refused 4 + 6, per seed
    "gaal-short": [(10, 0), (10, 10), (20, 10)],  # refused all 10, then none
}
# By hand, trapezoid over 10..30 divided by 20, normalised with chance 0.5 (two classes):
# random "same" (0.3 + 0.7 + 0.4) / 2 = 0.7 -> 0.4; every other area likewise.
AREAS = {("random", "same"): 0.4, ("random", "shifted"): 0.2,
         ("gaal", "same"): 0.25, ("gaal", "shifted"): 0.5,
         ("svm-active", "same"): 0.55, ("svm-active", "shifted"): 0.35,
         # seed 0: 0.2 on both; seed 1 stops at 20 labels: mean accuracy 0.6 -> 0.2
         ("gaal-short", "same"): 0.2, ("gaal-short", "shifted"): 0.2}


def _table(folder: Path, counts: bool = True) -> Path:
    rows = []
    for strategy, (same, shifted) in CURVES.items():
        for seed in (0, 1):
            last = 1 if (strategy, seed) == ("gaal-short", 1) else 2
            for r in range(last + 1):
                for test_set, curve in (("same", same), ("shifted", shifted)):
                    row = {"dataset": "d", "strategy": strategy, "seed": seed, "round": r,
                           "n_labels": 10 * (r + 1), "test_set": test_set,
                           "accuracy": curve[r], "n_classes": 2}
                    if counts:
                        row["n_train"], row["n_abstained"] = COUNTS[strategy][r]
                    rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    return folder


def test_screen_matches_a_hand_computation(tmp_path: Path) -> None:
    out = _table(tmp_path / "out")
    assert main(["report", str(out), "--screen"]) == 0
    got = pd.read_csv(out / "screen.csv")
    # best area on the first test set ("same") first, each strategy's test sets together
    assert list(dict.fromkeys(got["strategy"])) == ["svm-active", "random", "gaal", "gaal-short"]
    by = got.set_index(["strategy", "test_set"])
    for key, area in AREAS.items():
        assert by.loc[key, "area"] == pytest.approx(area)
    refusals = got.drop_duplicates("strategy").set_index("strategy")
    assert refusals.loc["gaal", ["asked", "refused"]].tolist() == [40, 20]
    assert refusals.loc["gaal", "refusal_rate"] == pytest.approx(0.5)
    assert refusals.loc["gaal-short", ["asked", "refused"]].tolist() == [30, 20]
    assert refusals.loc["random", ["asked", "refused", "refusal_rate"]].tolist() == [40, 0, 0]
    assert (got["budget"] == 30).all() and (got["seeds"] == 2).all()
    assert by.loc[("gaal", "shifted"), "acc_at_budget"] == pytest.approx(0.8)
    assert by.loc[("gaal-short", "same"), "runs_at_budget"] == 1  # seed 1 never got there
    assert (by.drop(index="gaal-short", level=0)["runs_at_budget"] == 2).all()

    section = (out / "report.md").read_text().split("## Screening", 1)[1].split("\n## ")[0]
    assert "| strategy | seeds | refused / asked (rate) | area same | @30 same | area shifted " \
           "| @30 shifted |" in section
    assert "| gaal | 2 | 20/40 (0.500) | 0.2500 | 0.7000 | 0.5000 | 0.8000 |" in section
    assert "| gaal-short | 2 | 20/30 (0.667) | 0.2000 | 0.6000 | 0.2000 | 0.6000 |" in section


def test_screen_sorted_by_another_test_set(tmp_path: Path) -> None:
    out = _table(tmp_path / "out")
    assert main(["report", str(out), "--screen-sort", "shifted"]) == 0  # implies --screen
    got = pd.read_csv(out / "screen.csv")
    # ties (gaal-short and random, 0.2) keep the strategies' alphabetical order
    assert list(dict.fromkeys(got["strategy"])) == ["gaal", "svm-active", "gaal-short", "random"]
    assert "Best area on `shifted` first" in (out / "report.md").read_text()


def test_no_screen_unless_asked(tmp_path: Path) -> None:
    out = _table(tmp_path / "out")
    assert main(["report", str(out)]) == 0
    assert not (out / "screen.csv").exists()
    assert "## Screening" not in (out / "report.md").read_text()


def test_screen_errors_are_one_line_before_writing(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    for counts, flags, message in ((True, ["--screen-sort", "usps"], "no test set 'usps'"),
                                   (False, ["--screen"], "n_abstained")):
        out = _table(tmp_path / f"out{counts}", counts=counts)
        assert main(["report", str(out), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
