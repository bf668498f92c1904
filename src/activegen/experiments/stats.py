"""Statistics of learning curves, computed from the tidy results table alone.

- Area under the learning curve on a linear and on a log2 label axis, normalised as in the
  Active Learning Challenge (Guyon et al.): ``(A - A_chance) / (A_perfect - A_chance)``, so a
  learner at chance accuracy scores 0 and a perfect one 1.
- Labels needed to reach a fraction of the fully supervised accuracy, and the saving against
  a baseline strategy.
- Paired tests over shared seeds (paired t and Wilcoxon signed-rank) at each label count,
  Holm-corrected across label counts; the same for two named strategies side by side
  (:func:`paired_comparison`, e.g. with and without VAE features).
- The pairwise "wins" matrix of the BADGE paper: at each label count a paired t-test over
  seeds; a significant win of ``i`` over ``j`` adds ``1 / n_label_counts`` to ``W[i, j]``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.integrate import trapezoid

from activegen.experiments.results import SUPERVISED


def curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of accuracy per (test set, strategy, label count)."""
    active = frame[frame["strategy"] != SUPERVISED]
    grouped = active.groupby(["test_set", "strategy", "n_labels"])["accuracy"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


#: Bands a learning-curve plot can draw around the mean, and how the figure names each.
BANDS: dict[str, str] = {
    "ci95": "95 % CI of the mean over seeds (t)",
    "std": "± 1 std over seeds",
}


def band_halfwidth(std: np.ndarray, n: np.ndarray, kind: str = "ci95") -> np.ndarray:
    """Half-width of the band around a mean of ``n`` seeds with sample std ``std``.

    ``ci95``: the t-based 95 % confidence interval of the mean,
    ``t_{0.975, n-1} · std / √n`` (NaN where ``n < 2``: one seed gives no interval);
    ``std``: the spread of the seeds themselves, ``std``.
    """
    std = np.asarray(std, dtype=float)
    n = np.asarray(n, dtype=float)
    if kind == "std":
        return std.copy()
    if kind != "ci95":
        raise ValueError(f"unknown band {kind!r}; known: {', '.join(BANDS)}")
    out = np.full(np.broadcast(std, n).shape, np.nan)
    ok = np.broadcast_to(n >= 2, out.shape)
    n_ok = np.broadcast_to(n, out.shape)[ok]
    out[ok] = stats.t.ppf(0.975, n_ok - 1) * np.broadcast_to(std, out.shape)[ok] / np.sqrt(n_ok)
    return out


def supervised_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of the fully supervised reference per test set (empty if absent)."""
    sup = frame[frame["strategy"] == SUPERVISED]
    return sup.groupby("test_set")["accuracy"].agg(mean="mean", std="std").fillna(0.0)


def normalized_area(n_labels: np.ndarray, accuracy: np.ndarray, chance: float,
                    log2: bool = False) -> float:
    """Area under one learning curve, normalised so chance scores 0 and perfection 1.

    The area is the trapezoidal integral over the label span divided by its width (the mean
    accuracy over the budget); a single point gives that point's accuracy.
    """
    x = np.asarray(n_labels, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if log2:
        x = np.log2(x)
    mean_acc = float(y[0]) if len(x) < 2 or x[-1] == x[0] else float(
        trapezoid(y, x) / (x[-1] - x[0])
    )
    return (mean_acc - chance) / (1.0 - chance)


def chance_level(frame: pd.DataFrame) -> float:
    """``1 / n_classes`` when the table records ``n_classes``, else 0.5 (binary)."""
    if "n_classes" in frame and frame["n_classes"].notna().any():
        return 1.0 / float(frame["n_classes"].dropna().iloc[0])
    return 0.5


#: the reasons :func:`early_ends` gives
NO_LABEL = "no label in its last {n} rounds (the oracle refused every query)"
OTHER_END = "the pool ran out, or a [stopping] criterion's stop_on ended it"


def early_ends(frame: pd.DataFrame, max_empty_rounds: int) -> pd.DataFrame:
    """The runs that ended at fewer labels than the experiment's longest run, with why.

    From the results alone: a run whose ``n_train`` did not grow over its last
    ``max_empty_rounds`` rounds was stopped by the engine for bringing no label (its oracle
    abstained on everything); any other early end is the pool running out or a stopping
    criterion. Such a run has no accuracy at the later label counts, and its areas cover only
    the labels it reached, so the report lists it rather than letting a '–' or a short area
    pass unexplained.
    """
    columns = ["strategy", "seed", "last_labels", "longest_run", "reason"]
    active = frame[frame["strategy"] != SUPERVISED]
    if active.empty:
        return pd.DataFrame(columns=columns)
    one_test = active[active["test_set"] == sorted(active["test_set"].unique())[0]]
    longest = int(one_test["n_labels"].max())
    rows = []
    for (strategy, seed), run in one_test.groupby(["strategy", "seed"]):
        run = run.sort_values("round")
        last = int(run["n_labels"].iloc[-1])
        if last >= longest:
            continue
        tail = run["n_train"].to_numpy()[-(max_empty_rounds + 1):] if "n_train" in run else []
        stalled = len(tail) == max_empty_rounds + 1 and len(set(tail.tolist())) == 1
        rows.append({"strategy": strategy, "seed": seed, "last_labels": last,
                     "longest_run": longest,
                     "reason": NO_LABEL.format(n=max_empty_rounds) if stalled else OTHER_END})
    return pd.DataFrame(rows, columns=columns)


def areas(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalised areas per (test set, strategy, seed), on linear and log2 axes."""
    chance = chance_level(frame)
    rows = []
    active = frame[frame["strategy"] != SUPERVISED]
    for (test_set, strategy, seed), run in active.groupby(["test_set", "strategy", "seed"]):
        rows.append({
            "test_set": test_set,
            "strategy": strategy,
            "seed": seed,
            "auc": normalized_area(run["n_labels"].to_numpy(), run["accuracy"].to_numpy(), chance),
            "auc_log2": normalized_area(run["n_labels"].to_numpy(), run["accuracy"].to_numpy(),
                                        chance, log2=True),
        })
    return pd.DataFrame(rows, columns=["test_set", "strategy", "seed", "auc", "auc_log2"])


def labels_to_reach(n_labels: np.ndarray, mean_accuracy: np.ndarray, target: float) -> float:
    """The label count from which the mean curve stays at or above ``target`` to the end of
    the budget (NaN if it ends below): a one-round blip above the target that falls back
    does not count as reaching it."""
    order = np.argsort(n_labels)
    n, acc = np.asarray(n_labels)[order], np.asarray(mean_accuracy)[order]
    if len(acc) == 0 or not acc[-1] >= target:
        return float("nan")
    below = np.flatnonzero(~(acc >= target))
    return float(n[below[-1] + 1]) if len(below) else float(n[0])


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1; NaN kept)."""
    p = np.asarray(pvalues, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, (m - rank) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted


def _paired(frame: pd.DataFrame, test_set: str, a: str, b: str) -> pd.DataFrame:
    """Accuracies of strategies ``a`` and ``b`` paired by (seed, label count)."""
    sub = frame[(frame["test_set"] == test_set) & frame["strategy"].isin([a, b])]
    wide = sub.pivot_table(index=["n_labels", "seed"], columns="strategy", values="accuracy")
    if a not in wide or b not in wide:
        return pd.DataFrame(columns=["n_labels", "seed", a, b])
    return wide[[a, b]].dropna().reset_index()


def paired_t_pvalue(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided paired t-test p-value of ``x - y``; NaN with fewer than 2 pairs.

    Identical samples give 1; a constant non-zero difference gives 0.
    """
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(d) < 2:
        return float("nan")
    if np.allclose(d, 0.0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(stats.ttest_rel(x, y).pvalue)
    return 0.0 if np.isnan(p) else p  # NaN: constant non-zero difference


def wilcoxon_pvalue(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences ``d`` (zeros split).

    With ties or zeros among at most 13 differences, SciPy runs a generic permutation test
    over all ``2^n`` sign flips, evaluating its statistic one flip at a time (≈0.3 s per test,
    minutes for a report); we enumerate the same sign flips as one matrix product instead,
    which gives SciPy's p-value (checked in the tests) in microseconds. Other cases go to
    :func:`scipy.stats.wilcoxon` directly.
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[~np.isnan(d)]
    if len(d) < 2:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    ties_or_zeros = bool(np.any(d == 0)) or len(np.unique(np.abs(d))) < len(d)
    if ties_or_zeros and len(d) <= 13:
        return _wilcoxon_sign_flip_pvalue(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(d, zero_method="zsplit").pvalue)


def _wilcoxon_sign_flip_pvalue(d: np.ndarray) -> float:
    """Exact two-sided sign-flip p-value of ``R+`` (zsplit), as SciPy's permutation test."""
    ranks = stats.rankdata(np.abs(d))
    zero = d == 0
    half_zero = ranks[zero].sum() / 2.0
    observed = ranks[d > 0].sum() + half_zero
    nonzero_ranks = ranks[~zero]
    m = len(nonzero_ranks)
    flips = (np.arange(2**m)[:, None] >> np.arange(m)) & 1  # every sign pattern, [2^m, m]
    null = flips @ nonzero_ranks + half_zero
    tolerance = abs(observed) * np.finfo(np.float64).eps * 100
    p_greater = np.mean(null >= observed - tolerance)
    p_less = np.mean(null <= observed + tolerance)
    return float(min(1.0, 2.0 * min(p_greater, p_less)))


def paired_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sided p-values ``(paired t, Wilcoxon)`` of ``x - y``; NaN with fewer than 2 pairs.

    Identical samples give p = 1 (no evidence of a difference) rather than NaN.
    """
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(d) < 2:
        return float("nan"), float("nan")
    return paired_t_pvalue(x, y), wilcoxon_pvalue(d)


def paired_tests(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each strategy against ``baseline`` at every shared label count, per test set.

    Columns: test_set, strategy, n_labels, n_pairs, mean_diff, p_t, p_wilcoxon, and their
    Holm-adjusted versions across the label counts of that (test set, strategy).
    """
    rows = []
    active = frame[frame["strategy"] != SUPERVISED]
    for test_set in sorted(active["test_set"].unique()):
        for strategy in sorted(active["strategy"].unique()):
            if strategy == baseline:
                continue
            pairs = _paired(active, test_set, strategy, baseline)
            block = []
            for n, group in pairs.groupby("n_labels"):
                x, y = group[strategy].to_numpy(), group[baseline].to_numpy()
                p_t, p_w = paired_test(x, y)
                block.append({
                    "test_set": test_set,
                    "strategy": strategy,
                    "n_labels": int(n),
                    "n_pairs": len(x),
                    "mean_diff": float(np.mean(x - y)),
                    "p_t": p_t,
                    "p_wilcoxon": p_w,
                })
            if block:
                p_t = holm(np.array([r["p_t"] for r in block]))
                p_w = holm(np.array([r["p_wilcoxon"] for r in block]))
                for row, pt, pw in zip(block, p_t, p_w, strict=True):
                    row["p_t_holm"], row["p_wilcoxon_holm"] = pt, pw
                rows.extend(block)
    columns = ["test_set", "strategy", "n_labels", "n_pairs", "mean_diff", "p_t", "p_wilcoxon",
               "p_t_holm", "p_wilcoxon_holm"]
    return pd.DataFrame(rows, columns=columns)


PAIR_COLUMNS = ["test_set", "plain", "augmented", "n_labels", "n_pairs", "plain_mean",
                "plain_std", "augmented_mean", "augmented_std", "mean_diff", "p_t", "p_wilcoxon",
                "p_t_holm", "p_wilcoxon_holm"]


def paired_comparison(frame: pd.DataFrame, plain: str, augmented: str) -> pd.DataFrame:
    """``augmented`` against ``plain`` (e.g. a strategy with and without VAE features) at every
    label count both reached, per test set, over the seeds both ran.

    Columns (:data:`PAIR_COLUMNS`): the mean and sample std of each over those seeds, the mean
    paired difference (augmented − plain), and the paired t / Wilcoxon p-values of
    :func:`paired_tests`, raw (as papers report per label count) and Holm-corrected across the
    label counts of the pair and test set.
    """
    both = frame[frame["strategy"].isin([plain, augmented])]
    tests = paired_tests(both, plain)
    rows = []
    for test_set in sorted(both["test_set"].unique()):
        pairs = _paired(both, test_set, augmented, plain)
        spread = pairs.groupby("n_labels")[[plain, augmented]].agg(["mean", "std"])
        here = tests[tests["test_set"] == test_set].set_index("n_labels")
        for n, row in here.iterrows():
            rows.append({"test_set": test_set, "plain": plain, "augmented": augmented,
                         "n_labels": int(n), "n_pairs": int(row["n_pairs"]),
                         "plain_mean": spread.loc[n, (plain, "mean")],
                         "plain_std": spread.loc[n, (plain, "std")],
                         "augmented_mean": spread.loc[n, (augmented, "mean")],
                         "augmented_std": spread.loc[n, (augmented, "std")],
                         **{c: row[c] for c in ("mean_diff", "p_t", "p_wilcoxon", "p_t_holm",
                                                "p_wilcoxon_holm")}})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def area_tests(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each strategy's normalised areas (linear and log2) against ``baseline``'s, paired by
    seed: mean difference and two-sided paired t and Wilcoxon p-values, per test set, and the
    same Holm-corrected over the strategies of each test set and axis."""
    area = areas(frame)
    rows = []
    for (test_set, strategy), group in area.groupby(["test_set", "strategy"]):
        if strategy == baseline:
            continue
        base = area[(area["test_set"] == test_set) & (area["strategy"] == baseline)]
        pairs = group.merge(base, on="seed", suffixes=("", "_base"))
        for axis in ("auc", "auc_log2"):
            x, y = pairs[axis].to_numpy(), pairs[f"{axis}_base"].to_numpy()
            p_t, p_w = paired_test(x, y)
            rows.append({"test_set": test_set, "strategy": strategy, "axis": axis,
                         "n_pairs": len(x), "mean_diff": float(np.mean(x - y)) if len(x)
                         else float("nan"), "p_t": p_t, "p_wilcoxon": p_w})
    table = pd.DataFrame(rows, columns=["test_set", "strategy", "axis", "n_pairs", "mean_diff",
                                        "p_t", "p_wilcoxon"])
    # Holm over the strategies compared with the baseline, per test set and axis: one family
    # of tests per question "which strategy's area differs from the baseline's here?"
    table["p_t_holm"] = np.nan
    table["p_wilcoxon_holm"] = np.nan
    for _, family in table.groupby(["test_set", "axis"]):
        for raw, corrected in (("p_t", "p_t_holm"), ("p_wilcoxon", "p_wilcoxon_holm")):
            table.loc[family.index, corrected] = holm(family[raw].to_numpy(dtype=float))
    return table


def wins_matrix(frame: pd.DataFrame, test_set: str, alpha: float = 0.05) -> pd.DataFrame:
    """BADGE's pairwise penalty matrix: ``W[i, j]`` = share of label counts at which ``i``
    beats ``j`` by a paired t-test over seeds at level ``alpha``."""
    active = frame[(frame["strategy"] != SUPERVISED) & (frame["test_set"] == test_set)]
    names = sorted(active["strategy"].unique())
    matrix = pd.DataFrame(0.0, index=names, columns=names)
    for i in names:
        for j in names:
            if i == j:
                continue
            pairs = _paired(active, test_set, i, j)
            counts = pairs["n_labels"].unique()
            for _, group in pairs.groupby("n_labels"):
                x, y = group[i].to_numpy(), group[j].to_numpy()
                p_t = paired_t_pvalue(x, y)
                if not np.isnan(p_t) and p_t < alpha and np.mean(x - y) > 0:
                    matrix.loc[i, j] += 1.0 / len(counts)
    return matrix


def summary(frame: pd.DataFrame, baseline: str = "random", label_counts: list[int] | None = None,
            thresholds: tuple[float, ...] = (0.95, 0.99)) -> pd.DataFrame:
    """One row per (test set, strategy): accuracy at chosen label counts (mean ± std), the
    normalised areas (mean ± std over seeds), labels to reach each fraction of full
    supervision, and the saving of labels against ``baseline``."""
    curve = curves(frame)
    area = areas(frame)
    sup = supervised_accuracy(frame)
    rows = []
    counts = label_counts or _default_counts(curve["n_labels"].to_numpy())
    for (test_set, strategy), c in curve.groupby(["test_set", "strategy"]):
        row: dict[str, object] = {"test_set": test_set, "strategy": strategy}
        for n in counts:
            hit = c[c["n_labels"] == n]
            row[f"acc@{n}"] = float(hit["mean"].iloc[0]) if len(hit) else float("nan")
            row[f"std@{n}"] = float(hit["std"].iloc[0]) if len(hit) else float("nan")
        a = area[(area["test_set"] == test_set) & (area["strategy"] == strategy)]
        row["auc"], row["auc_std"] = float(a["auc"].mean()), float(a["auc"].std(ddof=1) or 0.0)
        row["auc_log2"] = float(a["auc_log2"].mean())
        row["auc_log2_std"] = float(a["auc_log2"].std(ddof=1) or 0.0)
        if test_set in sup.index:
            for frac in thresholds:
                target = frac * float(sup.loc[test_set, "mean"])
                row[f"labels@{frac:g}"] = labels_to_reach(c["n_labels"].to_numpy(),
                                                          c["mean"].to_numpy(), target)
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out[["auc_std", "auc_log2_std"]] = out[["auc_std", "auc_log2_std"]].fillna(0.0)
    for frac in thresholds:
        col = f"labels@{frac:g}"
        if col not in out:
            continue
        base = out[out["strategy"] == baseline].set_index("test_set")[col]
        out[f"saving@{frac:g}"] = [
            1.0 - r[col] / base[r["test_set"]] if r["test_set"] in base.index else float("nan")
            for _, r in out.iterrows()
        ]
    return out


def _default_counts(n_labels: np.ndarray) -> list[int]:
    """First, middle and last label count of a curve."""
    n = np.unique(n_labels)
    picks = sorted({int(n[0]), int(n[len(n) // 2]), int(n[-1])})
    return picks
