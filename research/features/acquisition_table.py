"""docs/features.md's table of features x learner x strategy from the cells of
research/features/table.sh: test accuracy (%) at 10/20/50/100/200 labels, mean ± std over the
seeds that finished, and each strategy against random (paired by seed, Holm-corrected over
the five label counts, :func:`activegen.experiments.stats.paired_tests`).

    PYTHONPATH=src python research/features/acquisition_table.py mnist10k [fashion]

Reads out/features/<dataset>-<features>-<learner>/runs/*.csv (the finished runs of each cell;
a cell still running contributes the seeds it finished, and the table says how many).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from activegen.experiments.stats import paired_tests

SOURCES = ("pixels", "vae", "self-supervised")
LEARNERS = ("linear-probe", "label-spreading")
STRATEGIES = ("random", "typiclust", "margin")
COUNTS = (10, 20, 50, 100, 200)


def cell(dataset: str, source: str, learner: str) -> pd.DataFrame | None:
    runs = sorted(Path(f"out/features/{dataset}-{source}-{learner}/runs").glob("*.csv"))
    frames = [pd.read_csv(p) for p in runs]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def table(dataset: str) -> str:
    lines = [f"| {dataset} | learner | strategy | seeds | "
             + " | ".join(str(n) for n in COUNTS) + " |",
             "|---|---|---|---:|" + "---:|" * len(COUNTS)]
    for source in SOURCES:
        for learner in LEARNERS:
            frame = cell(dataset, source, learner)
            if frame is None:
                lines.append(f"| {source} | {learner} | (not run) | 0 |" + " |" * len(COUNTS))
                continue
            # a strategy's seeds are those where random finished too (the pairs of the test)
            tests = paired_tests(frame, "random") if "random" in set(frame.strategy) else None
            for strategy in STRATEGIES:
                rows = frame[frame.strategy == strategy]
                if rows.empty:
                    continue
                cells = []
                for n in COUNTS:
                    acc = rows[rows.n_labels == n].accuracy * 100
                    text = f"{acc.mean():.1f} ± {acc.std(ddof=1):.1f}" if len(acc) > 1 else (
                        f"{acc.mean():.1f}" if len(acc) else "—")
                    if tests is not None and strategy != "random":
                        hit = tests[(tests.strategy == strategy) & (tests.n_labels == n)]
                        if len(hit):
                            p = float(hit.p_t_holm.iloc[0])
                            sign = "+" if hit.mean_diff.iloc[0] > 0 else "−"
                            text += f" ({sign}, p={p:.2g})" if p < 0.05 else ""
                    cells.append(text)
                lines.append(f"| {source} | {learner} | {strategy} | {rows.seed.nunique()} | "
                             + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["mnist10k", "fashion"]:
        print(table(name), "\n", sep="")
