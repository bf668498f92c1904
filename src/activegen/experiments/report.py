"""Plots and a Markdown report made from ``results.csv`` alone (no re-running).

The learning-curve band is the 95 % confidence interval of the mean over seeds by default
(``band="std"``: mean ± 1 std), and the figure says which; beyond four strategies each gets
its own panel, so bands do not merge.

``activegen report DIR`` writes, next to the table: ``learning_curves.png``, ``summary.csv``,
``pvalues.csv``, ``area_pvalues.csv`` (raw and Holm-corrected), ``wins_<test_set>.csv`` and
``report.md`` that ties them together; on request also side-by-side pairs (``pairs.csv``) and
a screening table of many variants (``screen.csv``).
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from activegen._atomic import atomic_write_bytes, atomic_write_text
from activegen.engine import MAX_EMPTY_ROUNDS
from activegen.errors import DataError
from activegen.experiments import stats
from activegen.experiments.abstention import abstention_per_round
from activegen.experiments.machine import (
    NOT_RECORDED,
    THREADS,
    describe,
    machine_kinds,
    machines_table,
)
from activegen.experiments.results import read_results, write_csv
from activegen.experiments.stopping_record import stopping_table

log = logging.getLogger("activegen")


def _count_range(n_labels: pd.Series) -> str:
    values = sorted(set(n_labels.astype(int)))
    if len(values) > 6:
        return f"{', '.join(map(str, values[:3]))}, …, {', '.join(map(str, values[-2:]))}"
    return ", ".join(map(str, values))


#: More strategies than this get one panel each (small multiples): overlapping bands blur.
SMALL_MULTIPLES_ABOVE = 4


def _draw_curve(ax: plt.Axes, c: pd.DataFrame, band: str, color: object, label: str) -> None:
    """One strategy's mean line and band (clipped to [0, 1]), with its seed count."""
    lo, hi = int(c["n"].min()), int(c["n"].max())
    # runs that stopped early leave fewer seeds at the end of the curve: say so
    n_seeds = f"n={hi}" if lo == hi else f"n={lo}–{hi}"
    half = stats.band_halfwidth(c["std"].to_numpy(), c["n"].to_numpy(), band)
    mean = c["mean"].to_numpy()
    ax.plot(c["n_labels"], mean, label=f"{label} ({n_seeds})", color=color, lw=1.6)
    ax.fill_between(c["n_labels"], (mean - half).clip(0, 1), (mean + half).clip(0, 1),
                    color=color, alpha=0.15, lw=0)


def learning_curve_figure(frame: pd.DataFrame, title: str | None = None, log_x: bool = False,
                          band: str = "ci95", baseline: str | None = None) -> Figure:
    """The learning-curve figure: line = mean over seeds, band = ``band`` (see
    :data:`stats.BANDS`), dashed = fully supervised.

    Up to :data:`SMALL_MULTIPLES_ABOVE` strategies share one panel per test set; with more,
    every strategy gets its own panel (per test set) with ``baseline`` (default: the first
    strategy) drawn in grey in each as the reference.
    """
    if band not in stats.BANDS:
        raise ValueError(f"unknown band {band!r}; known: {', '.join(stats.BANDS)}")
    curve = stats.curves(frame)
    sup = stats.supervised_accuracy(frame)
    test_sets = sorted(curve["test_set"].unique())
    strategies = sorted(curve["strategy"].unique())
    if baseline not in strategies:
        baseline = strategies[0] if strategies else None
    colors = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    small = len(strategies) > SMALL_MULTIPLES_ABOVE
    # panels: (test set, strategies drawn with a band, reference strategy or None)
    panels: list[tuple[str, list[str], str | None]] = []
    if small:
        cols = min(len(strategies), SMALL_MULTIPLES_ABOVE)
        per_test = math.ceil(len(strategies) / cols)
        for test_set in test_sets:
            group = [(test_set, [s], baseline if s != baseline else None) for s in strategies]
            panels += group + [("", [], None)] * (per_test * cols - len(group))
    else:
        cols = min(len(test_sets), 3)
        panels = [(t, strategies, None) for t in test_sets]
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.0 * rows), squeeze=False,
                             sharey=small, layout="constrained")
    band_name = stats.BANDS[band]
    for i, (ax, (test_set, drawn, reference)) in enumerate(zip(axes.flat, panels,
                                                              strict=False)):
        if not test_set:
            ax.set_visible(False)
            continue
        here = curve[curve["test_set"] == test_set]
        if reference is not None:
            ref = here[here["strategy"] == reference].sort_values("n_labels")
            if not ref.empty:
                ax.plot(ref["n_labels"], ref["mean"], color="0.45", lw=1.2, ls=":",
                        label=f"{reference} (reference, mean)")
        for strategy in drawn:
            c = here[here["strategy"] == strategy].sort_values("n_labels")
            if not c.empty:
                _draw_curve(ax, c, band, colors[strategy], strategy)
        if test_set in sup.index:
            ax.axhline(sup.loc[test_set, "mean"], color="black", ls="--", lw=1.2,
                       label=f"fully supervised ({sup.loc[test_set, 'mean']:.3f})")
        ax.set_title(f"test set: {test_set}" + (f" — {drawn[0]}" if small else ""))
        ax.set_xlabel("number of labeled samples")
        if not small or i % cols == 0:  # the band is named in the figure's title
            ax.set_ylabel("accuracy")
        # an accuracy never exceeds 1, but a line at 1 (full supervision on an easy task)
        # drawn on the frame cannot be seen: the axis ends a little above it, ticks at <= 1
        low = max(ax.get_ylim()[0], 0.0)
        ax.set_ylim(low, 1.0 + 0.03 * (1.0 - low))
        ax.set_yticks([t for t in ax.get_yticks() if low <= t <= 1.0 + 1e-9])
        if log_x:
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title + chr(10) if title else ''}line: mean; band: {band_name}")
    return fig


def plot_learning_curves(frame: pd.DataFrame, path: Path, title: str | None = None,
                         log_x: bool = False, band: str = "ci95",
                         baseline: str | None = None) -> Path:
    """Write :func:`learning_curve_figure` as a PNG at ``path`` (atomically)."""
    fig = learning_curve_figure(frame, title, log_x, band, baseline)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _fmt(x: object, digits: int = 3) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.{digits}f}"
    return str(x)


def _markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)\n"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def _summary_view(summary: pd.DataFrame, label_counts: list[int]) -> pd.DataFrame:
    """Human-readable summary: 'mean ± std' cells."""
    view = pd.DataFrame({"test set": summary["test_set"], "strategy": summary["strategy"]})
    for n in label_counts:
        if f"acc@{n}" in summary:
            view[f"acc @ {n}"] = [
                f"{m:.3f} ± {s:.3f}" if not math.isnan(m) else "–"
                for m, s in zip(summary[f"acc@{n}"], summary[f"std@{n}"], strict=True)
            ]
    view["AUC (linear)"] = [f"{m:.3f} ± {s:.3f}" for m, s in
                            zip(summary["auc"], summary["auc_std"], strict=True)]
    view["ALC (log2)"] = [f"{m:.3f} ± {s:.3f}" for m, s in
                          zip(summary["auc_log2"], summary["auc_log2_std"], strict=True)]
    for col in summary.columns:
        if col.startswith("labels@"):  # a count of labels: an integer, never '10.000'
            view[f"labels to {col[7:]}×full"] = [
                "–" if math.isnan(v) else str(int(v)) for v in summary[col]]
        if col.startswith("saving@"):  # a share of the baseline's labels, as a percentage
            view[f"saving vs baseline @ {col[7:]}"] = [
                "–" if math.isnan(v) else f"{100 * v:.0f} %" for v in summary[col]]
    return view


def _reference_section(frame: pd.DataFrame, reference: str, counts: list[int],
                       out_dir: Path) -> list[str]:
    """The paired tests and area tests of every strategy against ``reference``, written to
    ``pvalues_vs_<reference>.csv`` / ``area_pvalues_vs_<reference>.csv``; report lines."""
    pvalues = stats.paired_tests(frame, reference)
    area_p = stats.area_tests(frame, reference)
    write_csv(pvalues, out_dir / f"pvalues_vs_{reference}.csv")
    write_csv(area_p, out_dir / f"area_pvalues_vs_{reference}.csv")
    shown = pvalues[pvalues["n_labels"].isin(counts)] if not pvalues.empty else pvalues
    return [
        f"## Paired tests against `{reference}`",
        "",
        "As against the baseline: paired t and Wilcoxon over shared seeds, Holm-corrected "
        f"across the label counts of each strategy and test set (`pvalues_vs_{reference}.csv`"
        " has every count).",
        "",
        _markdown_table(shown),
        f"Normalised areas against `{reference}`, paired by seed, Holm-corrected across the "
        f"strategies of each test set and axis (`area_pvalues_vs_{reference}.csv`):",
        "",
        _markdown_table(area_p),
    ]


SCREEN_COLUMNS = ["strategy", "seeds", "asked", "refused", "refusal_rate", "test_set", "area",
                  "budget", "acc_at_budget", "runs_at_budget"]


def screen_table(frame: pd.DataFrame, sort_by: str | None = None) -> pd.DataFrame:
    """The screening view of many variants: per strategy, the oracle's refusals (refused /
    asked over every round and seed) and, per test set, the mean normalised area (linear axis,
    chance 0, perfect 1) and the mean accuracy at the budget (the largest label count of any
    run; ``runs_at_budget`` says how many runs reached it).

    One row per (strategy, test set); strategies ordered by their area on ``sort_by`` (default:
    the first test set), best first. From the results table alone, for choosing settings on
    screening seeds without re-running anything.
    """
    active = frame[frame["strategy"] != stats.SUPERVISED]
    tests = sorted(active["test_set"].unique())
    sort_by = tests[0] if sort_by is None else sort_by
    if sort_by not in tests:
        raise DataError(f"screen: no test set {sort_by!r}; the table's are: {', '.join(tests)}")
    per_round = abstention_per_round(frame)
    totals = per_round.groupby("strategy")[["asked", "abstained"]].sum()
    area = stats.areas(frame).groupby(["strategy", "test_set"])["auc"].mean()
    budget = int(active["n_labels"].max())
    at_budget = active[active["n_labels"] == budget].groupby(["strategy", "test_set"])[
        "accuracy"].agg(["mean", "count"])
    rows = []
    for strategy, runs in active.groupby("strategy"):
        asked = int(totals.loc[strategy, "asked"]) if strategy in totals.index else 0
        refused = int(totals.loc[strategy, "abstained"]) if strategy in totals.index else 0
        for test_set in tests:
            key = (strategy, test_set)
            rows.append({"strategy": strategy, "seeds": runs["seed"].nunique(), "asked": asked,
                         "refused": refused,
                         "refusal_rate": refused / asked if asked else float("nan"),
                         "test_set": test_set, "area": area.get(key, float("nan")),
                         "budget": budget,
                         "acc_at_budget": at_budget["mean"].get(key, float("nan")),
                         "runs_at_budget": int(at_budget["count"].get(key, 0))})
    table = pd.DataFrame(rows, columns=SCREEN_COLUMNS)
    key = table[table["test_set"] == sort_by].set_index("strategy")["area"].fillna(-math.inf)
    order = {s: i for i, s in enumerate(key.sort_values(ascending=False, kind="stable").index)}
    table["_order"] = table["strategy"].map(order)
    return (table.sort_values(["_order", "test_set"], kind="stable").drop(columns="_order")
            .reset_index(drop=True))


def _screen_section(table: pd.DataFrame, sort_by: str | None, out_dir: Path) -> list[str]:
    """``screen.csv`` and the report's screening table (one row per strategy)."""
    write_csv(table, out_dir / "screen.csv")
    tests = sorted(set(table["test_set"]))
    sort_by = sort_by or tests[0]
    budget = int(table["budget"].iloc[0]) if not table.empty else 0
    view_rows = []
    for strategy, rows in table.groupby("strategy", sort=False):
        first = rows.iloc[0]
        rate = "–" if math.isnan(first["refusal_rate"]) else f"{first['refusal_rate']:.3f}"
        row = {"strategy": strategy, "seeds": str(int(first["seeds"])),
               "refused / asked (rate)": f"{int(first['refused'])}/{int(first['asked'])} "
                                         f"({rate})"}
        for _, r in rows.set_index("test_set").loc[tests].reset_index().iterrows():
            row[f"area {r['test_set']}"] = _fmt(float(r["area"]), 4)
            row[f"@{budget} {r['test_set']}"] = _fmt(float(r["acc_at_budget"]), 4)
        view_rows.append(row)
    return [
        "## Screening",
        "",
        "Per strategy: the oracle's refusals over every round and seed (refused / asked), and "
        "on each test set the mean normalised area (linear axis; chance 0, perfect 1) and the "
        f"mean accuracy at the budget ({budget} labels; '–': no run reached it). Best area on "
        f"`{sort_by}` first (`screen.csv`).",
        "",
        _markdown_table(pd.DataFrame(view_rows)),
    ]


def _check_pairs(pairs: tuple[tuple[str, str], ...], strategies: list[str],
                 results: Path) -> None:
    """Refuse, before anything is written, a pair that is not two strategies of the table."""
    for plain, augmented in pairs:
        if plain == augmented:
            raise DataError(f"pair {plain}:{augmented}: a pair needs two different strategies")
        missing = [s for s in (plain, augmented) if s not in strategies]
        if missing:
            raise DataError(f"pair {plain}:{augmented}: {', '.join(map(repr, missing))} is not "
                            f"in {results}; its strategies are: {', '.join(strategies)}")


def _pairs_section(frame: pd.DataFrame, pairs: tuple[tuple[str, str], ...],
                   out_dir: Path) -> list[str]:
    """Each ``(plain, augmented)`` pair side by side per label count (``pairs.csv``); report
    lines, one table per pair and test set."""
    tables = [stats.paired_comparison(frame, plain, augmented) for plain, augmented in pairs]
    write_csv(pd.concat(tables, ignore_index=True), out_dir / "pairs.csv")
    lines = [
        "## Paired comparisons",
        "",
        "Per label count, over the seeds both strategies ran: accuracy mean ± std of each, "
        "the mean paired difference (second − first), and the paired t-test p-value, raw (as "
        "papers report one per label count) and Holm-corrected across the label counts of "
        "the pair and test set (`pairs.csv` adds the Wilcoxon test).",
        "",
    ]
    for (plain, augmented), table in zip(pairs, tables, strict=True):
        for test_set, rows in table.groupby("test_set", sort=True):
            view = pd.DataFrame({
                "labels": rows["n_labels"].astype(int).astype(str),
                plain: [f"{m:.3f} ± {_fmt(sd)}" for m, sd in
                        zip(rows["plain_mean"], rows["plain_std"], strict=True)],
                augmented: [f"{m:.3f} ± {_fmt(sd)}" for m, sd in
                            zip(rows["augmented_mean"], rows["augmented_std"], strict=True)],
                "mean diff": [f"{d:+.3f}" for d in rows["mean_diff"]],
                "p (t)": rows["p_t"].to_numpy(),
                "p (t, Holm)": rows["p_t_holm"].to_numpy(),
                "seeds": rows["n_pairs"].astype(int).astype(str),
            })
            lines += [f"### `{augmented}` vs `{plain}`, test set {test_set}", "",
                      _markdown_table(view)]
        if table.empty:
            lines += [f"### `{augmented}` vs `{plain}`", "",
                      "No label count with both strategies at a shared seed.", ""]
    return lines


def make_report(results: str | Path, baseline: str = "random",
                label_counts: list[int] | None = None,
                thresholds: tuple[float, ...] = (0.95, 0.99), title: str | None = None,
                strict_baseline: bool = False, band: str = "ci95",
                references: tuple[str, ...] = (),
                pairs: tuple[tuple[str, str], ...] = (), screen: bool = False,
                screen_sort: str | None = None) -> Path:
    """Write plots, tables and ``report.md`` next to ``results``; returns the report path.

    A ``baseline`` absent from the table falls back to the first strategy, unless
    ``strict_baseline`` (the user named it) makes that an error. ``band``: what the plots
    draw around the mean, ``ci95`` (95 % CI of the mean) or ``std`` (see ``stats.BANDS``).
    ``references``: further strategies every other one is tested against, as against the
    baseline (e.g. ``svm-active`` next to ``random``: "not below the strong baseline" needs
    its own Holm-corrected p-values); each must be in the table. ``pairs``: ``(plain,
    augmented)`` strategies compared side by side per label count (``pairs.csv``, e.g. a
    strategy with and without VAE features); each must be in the table. ``screen``: add
    :func:`screen_table` (``screen.csv``), ordered by the area on ``screen_sort``.
    """
    if band not in stats.BANDS:
        raise DataError(f"unknown plot band {band!r}; known: {', '.join(stats.BANDS)}")
    results = Path(results)
    frame = read_results(results)
    out_dir = results if results.is_dir() else results.parent
    strategies = sorted(set(frame["strategy"]) - {stats.SUPERVISED})
    if not strategies:
        raise DataError(f"{results}: no active-learning runs in the table, only "
                        f"{stats.SUPERVISED!r} rows")
    if baseline not in strategies:
        if strict_baseline:
            raise DataError(f"baseline {baseline!r} is not in {results}; its strategies are: "
                            f"{', '.join(strategies)}")
        baseline = strategies[0]
    references = tuple(dict.fromkeys(r for r in references if r != baseline))
    missing = [r for r in references if r not in strategies]
    if missing:
        raise DataError(f"reference strategy {', '.join(map(repr, missing))} is not in "
                        f"{results}; its strategies are: {', '.join(strategies)}")
    _check_pairs(pairs, strategies, results)
    # made before anything is written: a table without abstention counts is refused whole
    screened = screen_table(frame, screen_sort) if screen else None
    curve = stats.curves(frame)
    counts = label_counts or stats._default_counts(curve["n_labels"].to_numpy())
    off_curve = sorted(set(counts) - set(curve["n_labels"].astype(int)))
    if off_curve:
        log.warning("label count(s) %s are not on any learning curve of %s (its counts run "
                    "%s); their accuracy columns stay empty ('–')", off_curve, results,
                    _count_range(curve["n_labels"]))
    summary = stats.summary(frame, baseline, counts, thresholds)
    pvalues = stats.paired_tests(frame, baseline)
    write_csv(summary, out_dir / "summary.csv")
    write_csv(pvalues, out_dir / "pvalues.csv")
    plot_learning_curves(frame, out_dir / "learning_curves.png", title, band=band,
                         baseline=baseline)
    plot_learning_curves(frame, out_dir / "learning_curves_log2.png", title, log_x=True,
                         band=band, baseline=baseline)
    seeds = sorted(frame["seed"].unique())
    lines = [
        f"# {title or 'Active-learning report'}",
        "",
        f"Made by `activegen report` from `{results.name if results.is_file() else 'results.csv'}`"
        f" alone: {len(strategies)} strategies, {len(seeds)} seeds ({', '.join(map(str, seeds))}),"
        f" test sets: {', '.join(sorted(frame['test_set'].unique()))}.",
        "",
        "![learning curves](learning_curves.png)",
        "",
        f"In the plots the line is the mean over seeds and the band the {stats.BANDS[band]}"
        + (" (t_{0.975, n−1} · std / √n)" if band == "ci95" else "")
        + (f"; with more than {SMALL_MULTIPLES_ABOVE} strategies each has its own panel, "
           f"`{baseline}` drawn in grey in every panel as the reference"
           if len(strategies) > SMALL_MULTIPLES_ABOVE else "") + ".",
        "",
        "## Summary",
        "",
        "Accuracy is mean ± standard deviation over seeds. AUC is the area under the learning "
        "curve over the label budget on a linear axis, ALC on a log2 axis; both are normalised "
        "as in the Active Learning Challenge (chance = 0, perfect = 1). 'labels to f×full' is "
        "the label count from which the mean curve stays at or above f times the fully "
        "supervised accuracy to the end of the budget (a blip above it that falls back does "
        f"not count; '–': never); 'saving' is the percentage of labels saved against "
        f"`{baseline}` by that measure.",
        "",
        _markdown_table(_summary_view(summary, counts)),
    ]
    sup = stats.supervised_accuracy(frame)
    if not sup.empty:
        lines += ["Fully supervised reference (whole pool labeled):", ""]
        lines += [f"- {t}: {r['mean']:.4f} ± {r['std']:.4f}" for t, r in sup.iterrows()]
        lines.append("")
    if screened is not None:
        lines += _screen_section(screened, screen_sort, out_dir)
    lines += [
        f"## Paired tests against `{baseline}`",
        "",
        "Per label count, over shared seeds: paired t-test and Wilcoxon signed-rank test "
        "(two-sided), Holm-corrected across the label counts of each strategy and test set. "
        "Shown at the summary's label counts; every count is in `pvalues.csv`. "
        "Where a Wilcoxon p-value repeats down a column, the paired differences are tied "
        "or few: with n seeds the exact test can take only a handful of values (its "
        "smallest two-sided p is 2 / 2^n), so it is not broken, it has no more to say.",
        "",
    ]
    shown = pvalues[pvalues["n_labels"].isin(counts)] if not pvalues.empty else pvalues
    lines.append(_markdown_table(shown))
    area_p = stats.area_tests(frame, baseline)
    write_csv(area_p, out_dir / "area_pvalues.csv")
    lines += [
        f"Normalised areas against `{baseline}`, paired by seed, Holm-corrected across the "
        "strategies of each test set and axis (`area_pvalues.csv`):",
        "",
        _markdown_table(area_p),
    ]
    for reference in references:
        lines += _reference_section(frame, reference, counts, out_dir)
    if pairs:
        lines += _pairs_section(frame, pairs, out_dir)
    lines += [
        "## Pairwise wins (BADGE)",
        "",
        "Entry (row i, column j): the share of label counts at which i beats j by a paired "
        "t-test over seeds at p < 0.05. Column sums show how often a strategy loses. "
        "These wins are *not* corrected for multiple comparisons, unlike the Holm-corrected "
        "p-values above: a strategy can win here at many counts yet have no count with a "
        "corrected p < 0.05 (each uncorrected test at 5 % errs alone, many of them together "
        "err often). Trust the corrected table for a claim of difference; read this matrix as "
        "a description of where the curves part.",
        "",
    ]
    for test_set in sorted(frame["test_set"].unique()):
        wins = stats.wins_matrix(frame, test_set)
        write_csv(wins.reset_index(names="strategy"), out_dir / f"wins_{test_set}.csv")
        lines += [f"### {test_set}", "", _markdown_table(wins.reset_index(names="row beats →"))]
    early = stats.early_ends(frame, MAX_EMPTY_ROUNDS)
    if not early.empty:
        write_csv(early, out_dir / "early_ends.csv")
        lines += [
            "## Runs that ended early",
            "",
            f"{len(early)} run(s) ended at fewer labels than the longest run "
            f"({int(early['longest_run'].iloc[0])}): they have no accuracy at the later label "
            "counts ('–' or a mean over fewer seeds), and their areas cover only the labels "
            "they reached (`early_ends.csv`).",
            "",
            _markdown_table(early.drop(columns="longest_run")),
        ]
    stopping = stopping_table(out_dir)
    if not stopping.empty:
        lines += [
            "## Stopping criteria",
            "",
            "Per criterion (`[stopping]`), mean over the runs where it fired (`fired_runs` of "
            "`runs`): the labels at which it fired, the labels it saved against the budget and "
            "the accuracy it cost (final minus accuracy at that round).",
            "",
            _markdown_table(stopping),
        ]
    if results.is_dir() or results.name == "results.csv":  # an output folder's own table
        lines += _machines_section(out_dir)
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report


def _machines_section(out_dir: Path) -> list[str]:
    """Which machines computed the runs (their manifests), with ``machines.csv`` per run; a
    warning where they differ, since float kernels change what a seed computes."""
    runs = machines_table(out_dir)
    if runs.empty:
        return []
    write_csv(runs, out_dir / "machines.csv")
    kinds = machine_kinds(runs)
    unknown = (kinds["cpu"] == NOT_RECORDED).to_numpy()
    known = kinds[~unknown]
    resumed = runs[runs["resumed_from"] != ""]
    lines = ["## Machines", ""]
    if len(known) == 1 and resumed.empty:
        count = int(known["runs"].iloc[0])
        share = f"All {count}" if count == len(runs) else f"{count} of the {len(runs)}"
        lines.append(f"{share} runs were computed on one kind of machine (their manifests "
                     "in `runs/`): "
                     f"{describe(known.iloc[0].to_dict())} (`machines.csv`).")
    elif len(known) > 1:
        log.warning("%s: its runs were computed on %d kinds of machine (report.md, "
                    "'Machines')", out_dir, len(known))
        lines.append(
            f"**The runs were computed on {len(known)} kinds of machine.** A seed computes "
            "the same numbers only on one kind: the CPU's kernels (`cpu_capability`, `blas`) "
            "and the library versions change the last bits of trained networks and "
            "optimisation paths, and through them what a strategy picks. Compare strategies "
            "on runs of one machine, or check that the rows a comparison pairs agree "
            "(`machines.csv` lists every run).")
    # read back from manifests: a count that is not a number is shown as it is, never parsed
    counts = sorted(set(runs[THREADS]) - {NOT_RECORDED},
                    key=lambda c: (0, int(c), "") if c.isdigit() else (1, 0, c))
    if len(counts) > 1:
        log.warning("%s: its runs used %d thread counts (%s) (report.md, 'Machines')", out_dir,
                    len(counts), ", ".join(counts))
        lines.append(
            f"**The runs used {len(counts)} thread counts ({', '.join(counts)}).** How torch "
            "and BLAS split a reduction between threads changes the last bits as kernels do, "
            "so a seed's numbers differ between them; `machines.csv` gives each run's "
            "(`execution.threads` sets it).")
    if not resumed.empty:
        log.warning("%s: %d run(s) were resumed on another kind of machine than the one that "
                    "computed their earlier rounds (report.md, 'Machines')", out_dir,
                    len(resumed))
        lines.append(
            f"**{len(resumed)} run(s) were resumed on another kind of machine** than the one "
            f"that computed their earlier rounds: {', '.join(resumed['run'])}. Their rounds "
            "come from two kinds of float kernels; each is listed under the machine that "
            "finished it, and `machines.csv` (`resumed_from`) names the others.")
    elsewhere = runs[runs["trained_elsewhere"] != ""]
    if not elsewhere.empty:
        log.warning("%s: %d run(s) used an artefact (a generator) trained on another kind of "
                    "machine than theirs (report.md, 'Machines')", out_dir, len(elsewhere))
        lines.append(
            f"**{len(elsewhere)} run(s) used an artefact trained on another kind of machine** "
            f"(a generator from a shared or copied cache): {', '.join(elsewhere['run'])}. "
            "Their numbers are what neither machine computes alone from scratch; "
            "`machines.csv` (`trained_elsewhere`) names each artefact and its trainer.")
    if unknown.any():
        lines.append(f"{int(kinds.loc[unknown, 'runs'].sum())} run(s) record no machine "
                     "(manifests written before activegen recorded machines).")
    lines.append("")
    if len(kinds) > 1:
        lines += [_markdown_table(kinds), ""]
    return lines
