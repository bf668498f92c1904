"""The report is made from a results.csv alone; bad tables are refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activegen.errors import DataError
from activegen.experiments import stats
from activegen.experiments.report import make_report
from activegen.experiments.results import RESULT_COLUMNS, read_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_results(path: Path, test_sets: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    """Two strategies × 5 seeds × 4 label counts per test set, plus the supervised rows."""
    rng = np.random.default_rng(0)
    rows = []
    for test_set in test_sets:
        for seed in range(5):
            for r, n in enumerate((10, 20, 40, 80)):
                base = 0.6 + 0.1 * r
                for strategy, bonus in (("random", 0.0), ("svm-active", 0.05)):
                    rows.append({"dataset": "d", "strategy": strategy, "seed": seed, "round": r,
                                 "n_labels": n, "test_set": test_set,
                                 "accuracy": min(1.0, base + bonus + rng.normal(0, 0.01)),
                                 "n_classes": 2})
            rows.append({"dataset": "d", "strategy": "supervised", "seed": seed, "round": 0,
                         "n_labels": 500, "test_set": test_set, "accuracy": 0.95,
                         "n_classes": 2})
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def test_report_files_from_results_csv_alone(tmp_path: Path) -> None:
    frame = synthetic_results(tmp_path / "results.csv")
    report = make_report(tmp_path, baseline="random", label_counts=[10, 80], title="T")
    assert report == tmp_path / "report.md"
    for name in ("learning_curves.png", "learning_curves_log2.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    summary = pd.read_csv(tmp_path / "summary.csv")
    expected = stats.summary(frame, "random", [10, 80])
    assert summary[["test_set", "strategy"]].values.tolist() == [
        ["a", "random"], ["a", "svm-active"], ["b", "random"], ["b", "svm-active"]]
    np.testing.assert_allclose(summary["auc"], expected["auc"], rtol=1e-8)
    pvalues = pd.read_csv(tmp_path / "pvalues.csv")
    assert set(pvalues["strategy"]) == {"svm-active"} and len(pvalues) == 8
    assert (pvalues["p_t"] < 0.01).all()  # a 0.05 gain with 0.01 noise over 5 seeds
    area_p = pd.read_csv(tmp_path / "area_pvalues.csv")
    assert len(area_p) == 4 and (area_p["mean_diff"] > 0).all()
    wins = pd.read_csv(tmp_path / "wins_a.csv").set_index("strategy")
    assert wins.loc["svm-active", "random"] == 1.0 and wins.loc["random", "svm-active"] == 0.0
    assert (tmp_path / "wins_b.csv").exists()
    text = report.read_text()
    assert text.startswith("# T")
    assert "5 seeds (0, 1, 2, 3, 4)" in text and "test sets: a, b" in text
    assert "| a | svm-active |" in text and "acc @ 80" in text and "ALC (log2)" in text
    assert "- a: 0.9500 ± 0.0000" in text
    assert "## Paired tests against `random`" in text and "### b" in text


def test_report_next_to_a_results_file_and_fallback_baseline(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "mine.csv"
    synthetic_results(path, ("a",))
    report = make_report(path, baseline="margin")  # not in the table: the first strategy
    assert report.parent == path.parent
    assert "Paired tests against `random`" in report.read_text()
    with pytest.raises(DataError, match=r"baseline 'margin' is not in .*random, svm-active"):
        make_report(path, baseline="margin", strict_baseline=True)


def test_report_is_the_same_when_made_again(tmp_path: Path) -> None:
    synthetic_results(tmp_path / "one" / "results.csv")
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    make_report(tmp_path / "one")
    make_report(tmp_path / "two")
    make_report(tmp_path / "two")
    for name in ("report.md", "summary.csv", "pvalues.csv", "wins_a.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()


def test_report_refuses_missing_or_malformed_tables(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no results table here"):
        make_report(tmp_path)
    path = tmp_path / "results.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="not a readable CSV table"):
        make_report(tmp_path)
    path.write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(DataError, match="not a readable CSV table"):
        read_results(path)
    path.write_text("")
    with pytest.raises(DataError, match="not a readable CSV table"):
        read_results(path)
    path.write_text("dataset,strategy,seed\nd,random,0\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['round', 'n_labels'"):
        read_results(path)
    path.write_text(",".join(RESULT_COLUMNS) + "\n")
    with pytest.raises(DataError, match="has no rows"):
        read_results(path)
    path.write_text(",".join(RESULT_COLUMNS) + "\nd,random,0,0,10,t,0.5\nd,random,0,1,20,t,high\n")
    with pytest.raises(DataError, match=r"column 'accuracy' must hold numbers; row 3 has 'high'"):
        read_results(path)
    path.write_text(",".join(RESULT_COLUMNS) + "\nd,supervised,0,0,10,t,0.5\n")
    with pytest.raises(DataError, match="no active-learning runs"):
        make_report(tmp_path)


def test_area_pvalues_carry_holm_across_strategies_in_csv_and_report(tmp_path: Path) -> None:
    # constant curves: a run's normalised area is (accuracy - 0.5) / 0.5 on either axis, so
    # the paired t-test of the areas is scipy's on the accuracies, computed here independently
    from scipy import stats as sps

    accs = {"random": [0.60, 0.62, 0.61, 0.63, 0.60],
            "a": [0.62, 0.63, 0.63, 0.66, 0.61],   # a little above random
            "b": [0.70, 0.74, 0.69, 0.75, 0.71],   # far above
            "c": [0.61, 0.60, 0.63, 0.62, 0.62]}   # level
    rows = [{"dataset": "d", "strategy": s, "seed": seed, "round": r, "n_labels": n,
             "test_set": "t", "accuracy": acc, "n_classes": 2}
            for s, values in accs.items() for seed, acc in enumerate(values)
            for r, n in enumerate((10, 20, 40))]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    make_report(tmp_path, baseline="random")
    got = pd.read_csv(tmp_path / "area_pvalues.csv")
    raw = {s: sps.ttest_rel(accs[s], accs["random"]).pvalue for s in ("a", "b", "c")}
    # Holm by hand over the three strategies: ascending p times 3, 2, 1, running maximum
    ordered = sorted(raw, key=raw.get)
    holm, running = {}, 0.0
    for rank, s in enumerate(ordered):
        running = max(running, (3 - rank) * raw[s])
        holm[s] = min(1.0, running)
    for axis in ("auc", "auc_log2"):
        family = got[got["axis"] == axis].set_index("strategy")
        for s in ("a", "b", "c"):
            assert family.loc[s, "p_t"] == pytest.approx(raw[s])
            assert family.loc[s, "p_t_holm"] == pytest.approx(holm[s])
    assert holm["a"] > raw["a"]  # the correction changed something
    report = (tmp_path / "report.md").read_text()
    assert ("| test_set | strategy | axis | n_pairs | mean_diff | p_t | p_wilcoxon | p_t_holm "
            "| p_wilcoxon_holm |") in report
    row_a = next(line for line in report.splitlines() if line.startswith("| t | a | auc |"))
    assert row_a.split(" | ")[7] == f"{holm['a']:.3f}"
