"""A screening table from a finished output folder (no re-running): per strategy, the oracle's
abstention rate and, on every test set, the mean normalised area (linear axis) and the mean
accuracy at the budget.

Usage: python scripts/gaal_screen_table.py OUT [--sort TEST]

Needs OUT/results.csv. Abstentions come from ``activegen.experiments.abstention`` (refused /
asked over all rounds and seeds), areas from ``activegen.experiments.stats.areas`` (chance 0,
perfect 1), as in the report. Prints a Markdown table sorted by the area on ``--sort`` (default:
the first test set). Used to choose GAAL's synthesis settings on seeds that are not reported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from activegen.experiments import stats
from activegen.experiments.abstention import abstention_per_round
from activegen.experiments.results import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sort")
    args = parser.parse_args()
    frame = read_results(args.out / "results.csv")
    runs = frame[frame.strategy != stats.SUPERVISED]
    n = int(runs.n_labels.max())
    tests = sorted(runs.test_set.unique())
    key = args.sort or tests[0]
    areas = stats.areas(frame).groupby(["strategy", "test_set"]).auc.mean()
    per_round = abstention_per_round(frame)
    rows = []
    for s in sorted(runs.strategy.unique()):
        r = per_round[per_round.strategy == s]
        asked, refused = int(r.asked.sum()), int(r.abstained.sum())
        cells = [s, str(runs[runs.strategy == s].seed.nunique()),
                 f"{refused}/{asked} ({refused / max(asked, 1):.3f})"]
        for t in tests:
            at = runs[(runs.strategy == s) & (runs.test_set == t) & (runs.n_labels == n)]
            cells += [f"{areas.get((s, t), float('nan')):.4f}",
                      f"{at.accuracy.mean():.4f}" if len(at) else "–"]
        rows.append((areas.get((s, key), float("-inf")), cells))
    head = ["strategy", "seeds", "refused/asked (rate)"]
    for t in tests:
        head += [f"area {t}", f"@{n} {t}"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for _, cells in sorted(rows, key=lambda r: -r[0]):
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
