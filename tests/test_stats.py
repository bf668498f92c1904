"""Learning-curve statistics against hand-computed values and synthetic tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from activegen.experiments import stats


def table(curves: dict[str, dict[int, list[float]]], supervised: float | None = None,
          n_classes: int = 2, test_set: str = "t") -> pd.DataFrame:
    """A tidy results table: ``curves[strategy][n_labels]`` = accuracies, one per seed."""
    rows = []
    for strategy, by_count in curves.items():
        for r, (n, accs) in enumerate(sorted(by_count.items())):
            for seed, acc in enumerate(accs):
                rows.append({"dataset": "d", "strategy": strategy, "seed": seed, "round": r,
                             "n_labels": n, "test_set": test_set, "accuracy": acc,
                             "n_classes": n_classes})
    if supervised is not None:
        n_seeds = len(next(iter(next(iter(curves.values())).values())))
        rows += [{"dataset": "d", "strategy": "supervised", "seed": s, "round": 0,
                  "n_labels": 1000, "test_set": test_set, "accuracy": supervised,
                  "n_classes": n_classes} for s in range(n_seeds)]
    return pd.DataFrame(rows)


# -- normalised area ------------------------------------------------------------------------
def test_normalized_area_by_hand_trapezoid() -> None:
    n, acc = np.array([10, 20, 40]), np.array([0.6, 0.8, 0.9])
    # Linear: (0.6+0.8)/2·10 + (0.8+0.9)/2·20 = 7 + 17 = 24 over a width of 30 → 0.8;
    # normalised with chance 0.5: (0.8 - 0.5) / 0.5 = 0.6.
    assert stats.normalized_area(n, acc, chance=0.5) == pytest.approx(0.6)
    # log2 axis: 10, 20, 40 are one unit apart: (0.7 + 0.85) / 2 = 0.775 → 0.55.
    assert stats.normalized_area(n, acc, chance=0.5, log2=True) == pytest.approx(0.55)
    # Order of the points does not matter.
    assert stats.normalized_area(n[::-1], acc[::-1], chance=0.5) == pytest.approx(0.6)


@pytest.mark.parametrize("log2", [False, True])
@pytest.mark.parametrize("chance", [0.5, 0.1])
def test_alc_normalisation_chance_is_0_perfect_is_1(log2: bool, chance: float) -> None:
    n = np.array([4, 6, 10, 30, 100])
    assert stats.normalized_area(n, np.full(5, chance), chance, log2) == pytest.approx(0.0)
    assert stats.normalized_area(n, np.ones(5), chance, log2) == pytest.approx(1.0)
    worse = stats.normalized_area(n, np.full(5, chance / 2), chance, log2)
    assert worse < 0


def test_log2_axis_weights_the_early_labels_more() -> None:
    n = np.array([1, 2, 4, 8, 16, 32])
    early = np.array([0.5, 1, 1, 1, 1, 1.0])  # good from 2 labels on
    late = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 1.0])  # good only at the end
    assert stats.normalized_area(n, early, 0.5, log2=True) == pytest.approx(0.9)  # 4.5/5
    assert stats.normalized_area(n, late, 0.5, log2=True) == pytest.approx(0.1)  # 0.5/5
    # On a linear axis the early curve's first unit counts for 1/31 only.
    assert stats.normalized_area(n, early, 0.5) == pytest.approx(1 - 0.5 / 31)


def test_single_point_curve() -> None:
    assert stats.normalized_area(np.array([5]), np.array([0.75]), 0.5) == pytest.approx(0.5)


def test_areas_per_seed_use_the_tables_chance_level() -> None:
    frame = table({"a": {10: [0.1, 1.0], 20: [0.1, 1.0]}}, n_classes=10)
    assert stats.chance_level(frame) == pytest.approx(0.1)
    area = stats.areas(frame).set_index("seed")
    assert area.loc[0, "auc"] == pytest.approx(0.0) and area.loc[1, "auc"] == pytest.approx(1.0)
    assert stats.chance_level(frame.drop(columns="n_classes")) == 0.5


# -- Holm -----------------------------------------------------------------------------------
def test_holm_by_hand() -> None:
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone: 0.06.
    adjusted = stats.holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm(np.array([0.5, 0.6])), [1.0, 1.0])  # capped
    out = stats.holm(np.array([np.nan, 0.01, 0.02]))  # NaN kept, m counts the others
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.02, 0.02])
    assert stats.holm(np.array([np.nan])).tolist()[0] != 0.0


# -- paired tests ---------------------------------------------------------------------------
def test_paired_test_matches_scipy_and_handles_edge_cases() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.8, 0.02, 10), rng.normal(0.79, 0.02, 10)
    p_t, p_w = stats.paired_test(x, y)
    assert p_t == pytest.approx(sps.ttest_rel(x, y).pvalue)
    assert p_w == pytest.approx(sps.wilcoxon(x, y, zero_method="zsplit").pvalue)
    assert all(math.isnan(p) for p in stats.paired_test(x[:1], y[:1]))  # one pair: no test
    assert stats.paired_test(x, x.copy()) == (1.0, 1.0)  # identical: no evidence
    p_t, p_w = stats.paired_test(x + 0.01, x)  # constant non-zero difference
    assert p_t == 0.0 and p_w < 0.01


def test_paired_tests_pair_by_seed_and_apply_holm() -> None:
    better = {10: [0.5] * 6, 20: [0.9, 0.91, 0.92, 0.9, 0.93, 0.9]}
    base = {10: [0.5] * 6, 20: [0.8, 0.82, 0.81, 0.8, 0.83, 0.81]}
    frame = table({"unc": better, "random": base}, supervised=0.95)
    p = stats.paired_tests(frame, "random").set_index("n_labels")
    assert list(p["strategy"].unique()) == ["unc"]  # the baseline is not tested against itself
    assert p.loc[10, "p_t"] == 1.0 and p.loc[10, "mean_diff"] == 0.0
    assert p.loc[20, "mean_diff"] == pytest.approx(5.46 / 6 - 4.87 / 6)
    assert p.loc[20, "n_pairs"] == 6 and p.loc[20, "p_t"] < 1e-3
    assert p.loc[20, "p_t_holm"] == pytest.approx(2 * p.loc[20, "p_t"])
    # Pairing is by seed: shuffling one strategy's seeds changes the paired p-value.
    shuffled = frame.copy()
    mask = (shuffled["strategy"] == "unc") & (shuffled["n_labels"] == 20)
    shuffled.loc[mask, "seed"] = shuffled.loc[mask, "seed"].to_numpy()[::-1]
    q = stats.paired_tests(shuffled, "random").set_index("n_labels")
    assert q.loc[20, "p_t"] != pytest.approx(p.loc[20, "p_t"])


# -- wins matrix ----------------------------------------------------------------------------
def test_wins_matrix_one_strategy_dominates() -> None:
    rng = np.random.default_rng(1)
    counts = [10, 20, 30, 40]
    low = {n: list(0.8 + rng.normal(0, 0.01, 8)) for n in counts}
    high = {n: [a + 0.1 + rng.normal(0, 0.005) for a in low[n]] for n in counts}
    half = {n: (high[n] if n >= 30 else low[n]) for n in counts}  # wins at 2 of 4 counts
    frame = table({"best": high, "b": low, "c": {n: list(v) for n, v in low.items()},
                   "half": half})
    w = stats.wins_matrix(frame, "t")
    assert list(w.index) == ["b", "best", "c", "half"]
    assert w.loc["best", "b"] == 1.0 and w.loc["best", "c"] == 1.0
    assert w.loc["b", "best"] == 0.0 and w.loc["c", "best"] == 0.0
    assert w.loc["b", "c"] == 0.0 and w.loc["c", "b"] == 0.0  # identical: no win
    assert w.loc["half", "b"] == 0.5 and w.loc["best", "half"] == 0.5
    assert np.all(np.diag(w.to_numpy()) == 0)


# -- labels to reach, summary ---------------------------------------------------------------
def test_labels_to_reach() -> None:
    n, acc = np.array([30, 10, 20]), np.array([0.9, 0.5, 0.7])
    assert stats.labels_to_reach(n, acc, 0.7) == 20.0
    assert stats.labels_to_reach(n, acc, 0.71) == 30.0
    assert math.isnan(stats.labels_to_reach(n, acc, 0.95))


def test_summary_savings_and_accuracies() -> None:
    counts = [10, 20, 30, 40]
    rnd = dict(zip(counts, ([0.5, 0.5], [0.7, 0.7], [0.9, 0.9], [0.96, 0.96]), strict=True))
    unc = dict(zip(counts, ([0.5, 0.5], [0.95, 0.97], [0.97, 0.97], [0.98, 0.98]), strict=True))
    frame = table({"random": rnd, "unc": unc}, supervised=1.0)
    s = stats.summary(frame, "random", [10, 20], (0.95, 0.99)).set_index("strategy")
    assert s.loc["unc", "acc@20"] == pytest.approx(0.96)
    assert s.loc["unc", "std@20"] == pytest.approx(np.std([0.95, 0.97], ddof=1))
    # 0.95 × full (1.0): random first at 40 labels, unc at 20 → unc saves half the labels.
    assert s.loc["random", "labels@0.95"] == 40 and s.loc["unc", "labels@0.95"] == 20
    assert s.loc["unc", "saving@0.95"] == pytest.approx(0.5)
    assert s.loc["random", "saving@0.95"] == pytest.approx(0.0)
    assert math.isnan(s.loc["unc", "labels@0.99"]) and math.isnan(s.loc["unc", "saving@0.99"])
    # AUC: the mean over seeds of each seed's normalised area; identical seeds → std 0.
    expected = stats.normalized_area(np.array(counts), np.array([0.5, 0.7, 0.9, 0.96]), 0.5)
    assert s.loc["random", "auc"] == pytest.approx(expected)
    assert s.loc["random", "auc_std"] == 0.0
    assert s.loc["unc", "auc"] > s.loc["random", "auc"]


def test_curves_and_supervised_reference() -> None:
    frame = table({"a": {10: [0.5, 0.7], 20: [0.8, 0.8]}}, supervised=0.9)
    c = stats.curves(frame).set_index("n_labels")
    assert c.loc[10, "mean"] == pytest.approx(0.6) and c.loc[10, "n"] == 2
    assert c.loc[20, "std"] == 0.0
    assert "supervised" not in set(stats.curves(frame)["strategy"])
    assert stats.supervised_accuracy(frame).loc["t", "mean"] == pytest.approx(0.9)


def test_wilcoxon_matches_scipy_with_ties_and_zeros() -> None:
    """Our sign-flip enumeration gives SciPy's exact permutation p-value (and is fast)."""
    rng = np.random.default_rng(3)
    for n in (2, 5, 10, 13):
        for _ in range(3):
            d = rng.integers(-3, 4, n) / 144.0  # accuracy differences: many ties and zeros
            if np.all(d == 0):
                continue
            expected = sps.wilcoxon(d, zero_method="zsplit",
                                    method=sps.PermutationMethod()).pvalue
            assert stats.wilcoxon_pvalue(d) == pytest.approx(expected, rel=1e-9), d
    d = rng.normal(0.01, 0.02, 20)  # no ties: SciPy's own exact test
    assert stats.wilcoxon_pvalue(d) == pytest.approx(sps.wilcoxon(d).pvalue)


def test_area_tests_pair_the_areas_by_seed() -> None:
    counts = [10, 20, 40]
    rnd = {n: [0.6 + 0.01 * s + 0.001 * n for s in range(6)] for n in counts}
    unc = {n: [a + 0.05 + 0.002 * i for i, a in enumerate(rnd[n])] for n in counts}
    frame = table({"random": rnd, "unc": unc})
    t = stats.area_tests(frame, "random").set_index("axis")
    assert list(t["strategy"].unique()) == ["unc"] and list(t.index) == ["auc", "auc_log2"]
    area = stats.areas(frame)
    diff = (area[area.strategy == "unc"]["auc"].to_numpy()
            - area[area.strategy == "random"]["auc"].to_numpy())
    assert t.loc["auc", "mean_diff"] == pytest.approx(diff.mean())
    assert t.loc["auc", "n_pairs"] == 6 and t.loc["auc", "p_t"] < 1e-3
    assert t.loc["auc", "p_t"] == pytest.approx(stats.paired_t_pvalue(
        area[area.strategy == "unc"]["auc"].to_numpy(),
        area[area.strategy == "random"]["auc"].to_numpy()))


def test_area_tests_are_holm_corrected_across_strategies_per_test_set_and_axis() -> None:
    counts = [10, 20, 40]
    rng = np.random.default_rng(3)
    rnd = {n: list(0.6 + 0.001 * n + rng.normal(0, 0.01, 5)) for n in counts}
    curves = {"random": rnd}
    for k, shift in enumerate((0.002, 0.01, 0.04)):  # three strategies, weak to strong
        curves[f"s{k}"] = {n: [a + shift + rng.normal(0, 0.005) for a in rnd[n]] for n in counts}
    t = stats.area_tests(table(curves), "random")
    for _, family in t.groupby(["test_set", "axis"]):
        assert len(family) == 3
        for raw, corrected in (("p_t", "p_t_holm"), ("p_wilcoxon", "p_wilcoxon_holm")):
            np.testing.assert_allclose(family[corrected], stats.holm(family[raw].to_numpy()))
            # Holm by hand: sorted p_(i) times (m - i), running maximum, capped at 1
            p = np.sort(family[raw].to_numpy())
            by_hand = np.minimum(1, np.maximum.accumulate(p * np.arange(3, 0, -1)))
            np.testing.assert_allclose(np.sort(family[corrected].to_numpy()), by_hand)
            assert (family[corrected] >= family[raw] - 1e-15).all()
