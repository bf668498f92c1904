"""Issue 10's goals, checked on a finished GAAL output folder (no re-running).

Usage: python scripts/gaal_goals.py OUT --shifted TEST [--same TEST] [--at N]
       [--strong svm-active] [--strategies S ...]

Needs OUT/results.csv (``activegen run`` or ``scripts/run_by_strategy.py`` then
``activegen report OUT``). For every generator strategy (or the ones named), from the
same statistics the report uses (``activegen.experiments.stats``: paired t over seeds,
Holm-corrected across the label counts of each strategy and test set; areas: one paired t
per strategy, test set and axis):
(i) above random on the shifted test at ``--at`` (default: the budget) and on the normalised
area (linear axis), both p < 0.05; (ii) not significantly below ``--strong`` on any test, at
``--at`` and on the area; (iii) mean accuracy at ``--at`` on the shifted test at or above
the fully supervised reference; the oracle's abstention rate on the strategy's queries
(``activegen.experiments.abstention``: all rounds and seeds together, and the worst round
mean). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from activegen.experiments import stats
from activegen.experiments.abstention import abstention_per_round
from activegen.experiments.results import read_results

ALPHA = 0.05


def _at(tests: pd.DataFrame, test_set: str, strategy: str, n: int) -> pd.Series | None:
    row = tests[(tests.test_set == test_set) & (tests.strategy == strategy)
                & (tests.n_labels == n)]
    return None if row.empty else row.iloc[0]


def _area(tests: pd.DataFrame, test_set: str, strategy: str) -> pd.Series | None:
    row = tests[(tests.test_set == test_set) & (tests.strategy == strategy)
                & (tests.axis == "auc")]
    return None if row.empty else row.iloc[0]


def _fmt(row: pd.Series | None, column: str) -> str:
    if row is None:
        return "–"
    return f"{row['mean_diff']:+.4f} (p={row[column]:.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shifted", required=True)
    parser.add_argument("--same")
    parser.add_argument("--at", type=int)
    parser.add_argument("--strong", default="svm-active")
    parser.add_argument("--strategies", nargs="+")
    args = parser.parse_args()
    frame = read_results(args.out / "results.csv")
    names = sorted(set(frame.strategy) - {stats.SUPERVISED, "random", args.strong})
    chosen = args.strategies or [s for s in names if s.startswith(("gaal", "mixed", "simple"))]
    n = args.at or int(frame[frame.strategy != stats.SUPERVISED].n_labels.max())
    tests = [t for t in (args.shifted, args.same) if t]
    vs_random, area_random = stats.paired_tests(frame, "random"), stats.area_tests(frame, "random")
    have_strong = args.strong in set(frame.strategy)
    vs_strong = stats.paired_tests(frame, args.strong) if have_strong else None
    area_strong = stats.area_tests(frame, args.strong) if have_strong else None
    curve = stats.curves(frame)
    sup = stats.supervised_accuracy(frame)
    per_round = abstention_per_round(frame)
    print(f"label count {n}; shifted test `{args.shifted}`; paired t over seeds "
          f"(Holm across label counts at {n}; areas uncorrected, one test each)\n")
    head = ["strategy", f"(i) vs random @ {n}", "(i) vs random, area", "(i) met"]
    for t in tests:
        head += [f"(ii) vs {args.strong} @ {n}, {t}", f"(ii) area, {t}"]
    head += ["(ii) met", f"(iii) mean @ {n} / full", "(iii) met", "abstained / asked",
             "worst round (mean over seeds)"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for s in chosen:
        at, area = _at(vs_random, args.shifted, s, n), _area(area_random, args.shifted, s)
        met_i = (at is not None and area is not None and at.mean_diff > 0
                 and at.p_t_holm < ALPHA and area.mean_diff > 0 and area.p_t < ALPHA)
        cells = [s, _fmt(at, "p_t_holm"), _fmt(area, "p_t"), "yes" if met_i else "no"]
        below = False
        for t in tests:
            if vs_strong is None:
                cells += ["–", "–"]
                continue
            a, ar = _at(vs_strong, t, s, n), _area(area_strong, t, s)
            cells += [_fmt(a, "p_t_holm"), _fmt(ar, "p_t")]
            below |= a is not None and a.mean_diff < 0 and a.p_t_holm < ALPHA
            below |= ar is not None and ar.mean_diff < 0 and ar.p_t < ALPHA
        cells.append("–" if vs_strong is None else ("no" if below else "yes"))
        c = curve[(curve.test_set == args.shifted) & (curve.strategy == s)
                  & (curve.n_labels == n)]
        full = sup.loc[args.shifted, "mean"] if args.shifted in sup.index else np.nan
        mean = c["mean"].iloc[0] if not c.empty else np.nan
        cells += [f"{mean:.4f} / {full:.4f}", "yes" if mean >= full else "no"]
        r = per_round[per_round.strategy == s]
        asked, refused = int(r.asked.sum()), int(r.abstained.sum())
        worst = r.groupby("round").rate.mean().max() if len(r) else np.nan
        cells += [f"{refused} / {asked} ({refused / max(asked, 1):.3f})", f"{worst:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
