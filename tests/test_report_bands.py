"""Issue 12, item 11: the learning-curve band is a t-based 95 % CI of the mean (or mean ±
std on request), the figure says which, and beyond four strategies each gets a panel."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from activegen.cli import main
from activegen.errors import DataError
from activegen.experiments import stats
from activegen.experiments.report import learning_curve_figure, make_report


def test_ci95_halfwidth_matches_a_hand_computation() -> None:
    # t_{0.975,4} = 2.776445105, t_{0.975,1} = 12.70620474 (any t table)
    got = stats.band_halfwidth(np.array([0.1, 0.2, 0.3]), np.array([5, 2, 1]), "ci95")
    assert got[0] == pytest.approx(2.776445105 * 0.1 / math.sqrt(5), rel=1e-8)
    assert got[1] == pytest.approx(12.70620474 * 0.2 / math.sqrt(2), rel=1e-8)
    assert math.isnan(got[2])  # one seed: no interval, not a zero-width one
    std = stats.band_halfwidth(np.array([0.1, 0.2]), np.array([5, 2]), "std")
    np.testing.assert_array_equal(std, [0.1, 0.2])
    with pytest.raises(ValueError, match="unknown band 'iqr'"):
        stats.band_halfwidth(np.array([0.1]), np.array([3]), "iqr")


def _frame(n_strategies: int, seeds: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    names = ["random"] + [f"s{i}" for i in range(1, n_strategies)]
    rows = []
    for k, name in enumerate(names):
        for seed in range(seeds):
            for r, n in enumerate((10, 20, 40)):
                acc = min(1.0, 0.5 + 0.1 * r + 0.02 * k + rng.normal(0, 0.03))
                rows.append({"dataset": "d", "strategy": name, "seed": seed, "round": r,
                             "n_labels": n, "test_set": "test", "accuracy": acc,
                             "n_classes": 2})
    return pd.DataFrame(rows)


def test_band_of_curves_equals_scipy_interval_from_the_raw_seeds() -> None:
    frame = _frame(2, seeds=6)
    curve = stats.curves(frame)
    half = stats.band_halfwidth(curve["std"].to_numpy(), curve["n"].to_numpy())
    for (strategy, n_labels), h in zip(zip(curve["strategy"], curve["n_labels"], strict=True),
                                       half, strict=True):
        acc = frame[(frame["strategy"] == strategy) & (frame["n_labels"] == n_labels)][
            "accuracy"].to_numpy()
        lo, hi = sps.t.interval(0.95, len(acc) - 1, loc=acc.mean(), scale=sps.sem(acc))
        assert h == pytest.approx((hi - lo) / 2, rel=1e-9)


def _visible(fig: plt.Figure) -> list[plt.Axes]:
    return [ax for ax in fig.axes if ax.get_visible()]


def test_up_to_four_strategies_share_a_panel_and_the_figure_names_the_band() -> None:
    fig = learning_curve_figure(_frame(4))
    axes = _visible(fig)
    assert len(axes) == 1 and len(axes[0].collections) == 4  # four bands in one panel
    assert "band: 95 % CI of the mean over seeds" in fig._suptitle.get_text()
    plt.close(fig)
    fig = learning_curve_figure(_frame(4), band="std")
    assert "band: ± 1 std over seeds" in fig._suptitle.get_text()
    plt.close(fig)


def test_the_drawn_band_is_the_ci_of_the_mean() -> None:
    frame = _frame(1, seeds=5)
    fig = learning_curve_figure(frame)
    (ax,) = _visible(fig)
    ys = ax.collections[0].get_paths()[0].vertices
    curve = stats.curves(frame).sort_values("n_labels")
    for n, mean, std, k in curve[["n_labels", "mean", "std", "n"]].itertuples(index=False):
        h = sps.t.ppf(0.975, k - 1) * std / math.sqrt(k)
        at = ys[np.isclose(ys[:, 0], n), 1]
        for edge in (min(mean + h, 1.0), max(mean - h, 0.0)):
            assert np.isclose(at, edge).any(), (n, edge, at)
    plt.close(fig)


@pytest.mark.parametrize("n_strategies", [5, 7])
def test_beyond_four_strategies_one_panel_each_with_the_baseline(n_strategies: int) -> None:
    frame = _frame(n_strategies)
    fig = learning_curve_figure(frame, baseline="random")
    axes = _visible(fig)
    assert len(axes) == n_strategies
    assert "band: 95 % CI of the mean over seeds" in fig._suptitle.get_text()
    names = sorted(frame["strategy"].unique())
    for ax, name in zip(axes, names, strict=True):
        assert ax.get_title().endswith(f"— {name}")
        assert len(ax.collections) == 1  # this strategy's band only
        labels = [line.get_label() for line in ax.get_lines()]
        assert any(lab.startswith(f"{name} (n=4)") for lab in labels)
        has_reference = any(lab.startswith("random (reference") for lab in labels)
        assert has_reference == (name != "random")
    plt.close(fig)


def test_report_says_which_band_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    _frame(6).to_csv(tmp_path / "results.csv", index=False)
    text = make_report(tmp_path).read_text()
    assert "95 % CI of the mean over seeds" in text and "its own panel" in text
    assert main(["report", str(tmp_path), "--band", "std"]) == 0
    assert "± 1 std over seeds" in (tmp_path / "report.md").read_text()
    with pytest.raises(DataError, match="unknown plot band 'iqr'"):
        make_report(tmp_path, band="iqr")


def test_a_fully_supervised_line_at_one_is_drawn_inside_the_frame() -> None:
    """The demo's fully supervised line at 1.000 lay on the frame and could not be seen."""
    frame = _frame(2)
    sup = frame[frame["n_labels"] == 40].assign(strategy="supervised", accuracy=1.0)
    fig = learning_curve_figure(pd.concat([frame, sup]))
    ax = fig.axes[0]
    line = next(li for li in ax.get_lines() if li.get_label().startswith("fully supervised"))
    assert line.get_ydata()[0] == 1.0
    bottom, top = ax.get_ylim()
    assert top > 1.0 + 0.01 * (1.0 - bottom)  # above the line, by a visible margin
    assert max(ax.get_yticks()) <= 1.0  # no tick promises an accuracy above 1
    plt.close(fig)
