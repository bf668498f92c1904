"""A second reference strategy: its own Holm-corrected tests, equal to re-basing the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activegen.errors import DataError
from activegen.experiments import stats
from activegen.experiments.report import make_report
from test_report import synthetic_results


def _with_third_strategy(path: Path) -> pd.DataFrame:
    """random, svm-active (+0.05) and 'mid' (svm-active - 0.025) on two test sets, 5 seeds."""
    frame = synthetic_results(path)
    rng = np.random.default_rng(1)
    mid = frame[frame["strategy"] == "svm-active"].copy()
    mid["strategy"] = "mid"
    mid["accuracy"] = mid["accuracy"] - 0.025 + rng.normal(0, 0.002, len(mid))
    frame = pd.concat([frame, mid], ignore_index=True)
    frame.to_csv(path, index=False)
    return frame


def test_reference_tests_match_a_report_based_on_it(tmp_path: Path) -> None:
    frame = _with_third_strategy(tmp_path / "two" / "results.csv")
    report = make_report(tmp_path / "two", baseline="random", label_counts=[10, 80],
                         references=("svm-active",))
    got = pd.read_csv(tmp_path / "two" / "pvalues_vs_svm-active.csv")
    # the same numbers as a report whose baseline is svm-active
    (tmp_path / "one").mkdir()
    frame.to_csv(tmp_path / "one" / "results.csv", index=False)
    make_report(tmp_path / "one", baseline="svm-active", label_counts=[10, 80])
    want = pd.read_csv(tmp_path / "one" / "pvalues.csv")
    pd.testing.assert_frame_equal(got, want)
    assert set(got["strategy"]) == {"mid", "random"}
    # 'mid' is below svm-active (Holm p small) and above random in the baseline's table
    assert (got[got["strategy"] == "mid"]["mean_diff"] < 0).all()
    assert (got[got["strategy"] == "mid"]["p_t_holm"] < 0.05).all()
    base = pd.read_csv(tmp_path / "two" / "pvalues.csv")
    assert (base[base["strategy"] == "mid"]["mean_diff"] > 0).all()
    area = pd.read_csv(tmp_path / "two" / "area_pvalues_vs_svm-active.csv")
    pd.testing.assert_frame_equal(area, stats.area_tests(frame, "svm-active"),
                                  check_dtype=False)
    text = report.read_text()
    assert "## Paired tests against `random`" in text
    assert "## Paired tests against `svm-active`" in text


def test_unknown_reference_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    synthetic_results(tmp_path / "results.csv")
    with pytest.raises(DataError, match=r"'margin'.*random, svm-active"):
        make_report(tmp_path, references=("margin",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_reference_equal_to_the_baseline_adds_nothing(tmp_path: Path) -> None:
    synthetic_results(tmp_path / "results.csv")
    report = make_report(tmp_path, baseline="random", references=("random",))
    assert report.read_text().count("## Paired tests against") == 1
    assert not list(tmp_path.glob("pvalues_vs_*"))
