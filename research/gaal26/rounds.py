"""Per round of every synthesizing run in an experiment folder: the share of its queries the
oracle refused and the margins of what it labeled, from the saved queries
(``OUT/queries/<strategy>__seed<k>/round_XXXX.npz``: ``labels``, -1 = refused, and ``scores``,
minus the learner's margin at each synthesized image).

    python research/gaal26/rounds.py OUT [--csv rounds.csv.gz] [--every 5]

Prints per strategy: the refused share over all rounds and seeds, the median margin of the
labeled queries and of the refused ones, and the refused share and labeled median margin by
blocks of ``--every`` rounds (mean over seeds). Pool strategies (no ``scores`` of synthesized
images) are left out, and so are runs that did not finish (no ``OUT/runs/<run>.csv``: an
experiment stopped mid-run leaves that run's first rounds in ``queries/``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd


def read_rounds(out: Path) -> pd.DataFrame:
    """One row per (strategy, seed, round): asked, refused, the labeled and refused queries'
    median margins."""
    rows = []
    for run in sorted((out / "queries").iterdir()):
        match = re.fullmatch(r"(.+)__seed(\d+)", run.name)
        if match is None or not (out / "runs" / f"{run.name}.csv").is_file():
            continue
        for path in sorted(run.glob("round_*.npz")):
            with np.load(path) as data:
                if "samples" not in data or "scores" not in data:
                    break  # a pool strategy: its labels are the pool's truth
                labels, margins = data["labels"], -np.asarray(data["scores"], np.float64)
                rows.append({"strategy": match[1], "seed": int(match[2]),
                             "round": int(data["round"]), "asked": len(labels),
                             "refused": int((labels < 0).sum()),
                             "margin_labeled": float(np.median(margins[labels >= 0]))
                             if (labels >= 0).any() else np.nan,
                             "margin_refused": float(np.median(margins[labels < 0]))
                             if (labels < 0).any() else np.nan})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame, every: int) -> str:
    lines = ["| strategy | refused | labeled margin, median | refused margin, median | "
             "refused by rounds | labeled margin by rounds |", "|---|---|---|---|---|---|"]
    for strategy, part in frame.groupby("strategy"):
        share = part.refused.sum() / part.asked.sum()
        block = part.assign(block=part["round"] // every).groupby("block")
        by_share = block.apply(lambda b: b.refused.sum() / b.asked.sum(), include_groups=False)
        by_margin = block["margin_labeled"].median()
        lines.append(
            f"| {strategy} | {share:.3f} | {part.margin_labeled.median():.3f} | "
            f"{part.margin_refused.median():.3f} | "
            + " ".join(f"{v:.2f}" for v in by_share) + " | "
            + " ".join(f"{v:.3f}" for v in by_margin) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--csv", type=Path, help="write the per-round rows here")
    parser.add_argument("--every", type=int, default=5, help="rounds per block")
    args = parser.parse_args()
    frame = read_rounds(args.out)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(summary(frame, args.every))


if __name__ == "__main__":
    main()
