"""The confirmation table of research/gaal26/results.md from a folder on which
``activegen report DIR --reference svm-active --screen`` has run (it reads ``results.csv``,
``screen.csv``, ``pvalues.csv`` and ``pvalues_vs_svm-active.csv``): per arm, R (refused / asked),
the mean ± std over seeds of `SHIFTED` accuracy at 350 labels and of `SAME` at 250, and the mean
paired difference against `svm-active` and `random` at those counts with the paired t-test's
p, Holm-corrected across the label counts (``p_t_holm``); then the per-seed values and the
seconds each run took.

    python research/gaal26/confirm_table.py DIR [--shifted digits-28] [--same mnist10k-test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ARMS = ["gaal-edit", "gaal", "gaal+diversity", "gaal-labelable", "gaal-retrieve", "svm-active",
        "random"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shifted", default="digits-28")
    parser.add_argument("--same", default="mnist10k-test")
    args = parser.parse_args()
    results = pd.read_csv(args.out / "results.csv")
    screen = pd.read_csv(args.out / "screen.csv").drop_duplicates("strategy").set_index("strategy")
    vs = {"random": pd.read_csv(args.out / "pvalues.csv"),
          "svm-active": pd.read_csv(args.out / "pvalues_vs_svm-active.csv")}

    def at(arm: str, test: str, n: int) -> pd.Series:
        rows = results[(results.strategy == arm) & (results.test_set == test)
                       & (results.n_labels == n)]
        return rows.sort_values("seed").set_index("seed").accuracy

    def diff(arm: str, ref: str, test: str, n: int, digits: int) -> str:
        table = vs[ref]
        row = table[(table.strategy == arm) & (table.test_set == test) & (table.n_labels == n)]
        if row.empty:
            return ""
        return f"{row.mean_diff.iloc[0]:+.{digits}f} ({row.p_t_holm.iloc[0]:.2g})"

    print(f"| arm | R (refused / asked) | `{args.shifted}` @350 | Δ vs `svm-active` (Holm p) | "
          f"Δ vs `random` (Holm p) | `{args.same}` @250 | Δ vs `random` (Holm p) | "
          "Δ vs `svm-active` (Holm p) |")
    print("|---" * 8 + "|")
    for arm in ARMS:
        refused = screen.loc[arm]
        shifted, same = at(arm, args.shifted, 350), at(arm, args.same, 250)
        print(f"| `{arm}` | {refused.refusal_rate:.3f} ({refused.refused}/{refused.asked}) | "
              f"{shifted.mean():.3f} ± {shifted.std():.3f} | "
              f"{diff(arm, 'svm-active', args.shifted, 350, 3)} | "
              f"{diff(arm, 'random', args.shifted, 350, 3)} | "
              f"{same.mean():.3f} ± {same.std():.3f} | "
              f"{diff(arm, 'random', args.same, 250, 4)} | "
              f"{diff(arm, 'svm-active', args.same, 250, 4)} |")
    full = results[results.strategy == "supervised"].groupby("test_set").accuracy.mean()
    print(f"| fully supervised | | {full[args.shifted]:.4f} | | | {full[args.same]:.4f} | | |")
    print()
    for arm in ARMS:
        shifted, same = at(arm, args.shifted, 350), at(arm, args.same, 250)
        print(f"{arm}: seeds {' '.join(str(s) for s in shifted.index)}; {args.shifted} @350 "
              + " ".join(f"{v:.3f}" for v in shifted) + f"; {args.same} @250 "
              + " ".join(f"{v:.3f}" for v in same))
    print()
    seconds = (results[results.test_set == args.shifted]
               .assign(s=lambda f: f.fit_seconds + f.query_seconds + f.label_seconds)
               .groupby(["strategy", "seed"]).s.sum())
    for arm in ARMS:
        print(f"{arm}: run seconds (fit + query + label) by seed "
              + " ".join(f"{v:.0f}" for v in seconds[arm]))


if __name__ == "__main__":
    main()
