"""Paired comparisons "with vs without VAE features" from one or more results.csv files.

For each pair (plain, augmented) present, per label count: mean ± std accuracy of both over
the shared seeds, the mean paired difference, and the paired t-test p-value (raw, as the VAE
paper reports per label count, and Holm-corrected across the label counts). Prints Markdown.
Usage: python scripts/vae_pairs.py RESULTS.csv [RESULTS.csv ...] (files of one learner setup)
"""

from __future__ import annotations

import sys

import pandas as pd

from activegen.experiments import stats
from activegen.experiments.results import read_results

PAIRS = [("coreset", "vae-coreset"), ("medal", "vae-medal"),
         ("learning-loss", "vae-learning-loss"), ("coreset", "vae-coreset-a3"),
         ("coreset", "vae-coreset-a10"), ("coreset", "cvae-coreset"),
         ("random", "coreset"), ("random", "learning-loss")]


def main(paths: list[str]) -> None:
    frame = pd.concat([read_results(p) for p in paths], ignore_index=True)
    if frame.duplicated(subset=["strategy", "seed", "round", "test_set"]).any():
        raise SystemExit("the results files share strategies (e.g. 'random' under two "
                         "learners): compare them in separate calls")
    present = set(frame["strategy"])
    for plain, augmented in PAIRS:
        if plain not in present or augmented not in present:
            continue
        sub = frame[frame["strategy"].isin([plain, augmented])]
        seeds = set(sub[sub["strategy"] == plain]["seed"]) & set(
            sub[sub["strategy"] == augmented]["seed"])
        sub = sub[sub["seed"].isin(seeds)]
        tests = stats.paired_tests(sub, plain)
        curve = sub.groupby(["strategy", "n_labels"])["accuracy"].agg(["mean", "std"])
        print(f"\n#### {augmented} vs {plain} (seeds {sorted(seeds)})\n")
        print(f"| labels | {plain} | {augmented} | mean diff | p (t) | p (t, Holm) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for _, row in tests.iterrows():
            n = row["n_labels"]
            a, b = curve.loc[(plain, n)], curve.loc[(augmented, n)]
            print(f"| {n} | {a['mean']:.3f} ± {a['std']:.3f} | {b['mean']:.3f} ± {b['std']:.3f}"
                  f" | {row['mean_diff']:+.3f} | {row['p_t']:.3f} | {row['p_t_holm']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
