"""Holm-corrected area p-values of a finished experiment folder.

    PYTHONPATH=src python scripts/area_holm.py OUT_DIR

``activegen report`` writes ``area_pvalues.csv`` (each strategy's normalised areas against
the baseline, paired by seed) uncorrected; this prints them with Holm's correction over the
strategies, per test set and axis, as a Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from activegen.experiments.stats import holm


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    frame = pd.read_csv(Path(sys.argv[1]) / "area_pvalues.csv")
    print("| test set | strategy | axis | Δ area | p (t / Wilcoxon) | Holm p (t / Wilcoxon) |")
    print("|---|---|---|---|---|---|")
    for (test_set, axis), group in frame.groupby(["test_set", "axis"]):
        t_holm = holm(group["p_t"].to_numpy())
        w_holm = holm(group["p_wilcoxon"].to_numpy())
        for (_, r), pt, pw in zip(group.iterrows(), t_holm, w_holm, strict=True):
            print(f"| {test_set} | {r.strategy} | {axis} | {r.mean_diff:+.3f} | "
                  f"{r.p_t:.3f} / {r.p_wilcoxon:.3f} | {pt:.3f} / {pw:.3f} |")


if __name__ == "__main__":
    main()
