"""Figures and tables of docs/gaal.md from finished output folders (no re-running).

Usage: python scripts/gaal_figures.py OUT_DIR [EXTRA_OUT_DIR ...] --docs docs/gaal
Combines the results tables (e.g. gaal-mnist5k and its self-taught companion), writes the
learning curves, a summary with p-values against random, the abstention rates, query grids
of a few rounds and the generator's sample grid and quality figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from activegen.experiments import stats
from activegen.experiments.gallery import query_gallery
from activegen.experiments.output import saved_config
from activegen.experiments.report import plot_learning_curves
from activegen.experiments.results import read_results


def figure_title(out: Path, prefix: str) -> str:
    """The curves' title from the run's own config (its classes and learner), not assumed."""
    config = saved_config(out)
    if config is None:
        raise SystemExit(f"{out}: no config.json; not an 'activegen run' output folder")
    classes = config.data.classes
    task = " vs ".join(str(c) for c in classes) if classes else "all classes"
    return f"{prefix}: {task}, {config.learner.name}, mean ± std over seeds"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("extra", type=Path, nargs="*")
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--at", type=int, nargs="+", default=[50, 100, 150, 250, 350])
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 10, 29])
    parser.add_argument("--prefix", default="mnist5k")
    args = parser.parse_args()
    args.docs.mkdir(parents=True, exist_ok=True)
    frames = [read_results(args.out / "results.csv")]
    frames += [read_results(d / "results.csv") for d in args.extra]
    frame = pd.concat(frames, ignore_index=True)
    plot_learning_curves(frame, args.docs / f"{args.prefix}_curves.png",
                         title=figure_title(args.out, args.prefix))
    curve = stats.curves(frame)
    sup = stats.supervised_accuracy(frame)
    tests = stats.paired_tests(frame, "random")
    lines = []
    for test_set in sorted(curve["test_set"].unique()):
        lines.append(f"\n#### test set `{test_set}`\n")
        if test_set in sup.index:
            n_pool = int(frame[frame.strategy == "supervised"].n_labels.max())
            mean, std = sup.loc[test_set, "mean"], sup.loc[test_set, "std"]
            lines.append(f"fully supervised (all {n_pool} pool labels): {mean:.4f} ± {std:.4f}\n")
        header = "| strategy | " + " | ".join(str(n) for n in args.at) + " |"
        lines += [header, "|" + " --- |" * (len(args.at) + 1)]
        for strategy in sorted(curve["strategy"].unique()):
            cells = []
            for n in args.at:
                c = curve[(curve.test_set == test_set) & (curve.strategy == strategy)
                          & (curve.n_labels == n)]
                if c.empty:
                    cells.append("–")
                    continue
                cell = f"{c['mean'].iloc[0]:.4f} ± {c['std'].iloc[0]:.4f}"
                t = tests[(tests.test_set == test_set) & (tests.strategy == strategy)
                          & (tests.n_labels == n)] if strategy != "random" else pd.DataFrame()
                if not t.empty:
                    p = t.iloc[0]
                    cell += f" (p={p['p_t']:.3g})"  # paired t over seeds, vs random
                cells.append(cell)
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    last = frame[frame.strategy != "supervised"].sort_values("round").groupby(
        ["strategy", "seed"]).tail(1)
    abst = last.groupby("strategy").agg(abstained=("n_abstained", "mean"),
                                        labels=("n_labels", "mean"))
    lines.append("\n#### abstentions (mean over seeds, whole run)\n")
    lines += ["| strategy | abstained queries | queries asked | rate |",
              "| --- | --- | --- | --- |"]
    for strategy, row in abst.iterrows():
        asked = row["labels"] - frame[frame["round"] == 0]["n_labels"].min()
        rate = row["abstained"] / asked if asked > 0 else float("nan")
        lines.append(f"| {strategy} | {row['abstained']:.1f} | {asked:.0f} | {rate:.3f} |")
    (args.docs / f"{args.prefix}_tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    # query grids of a few rounds, seed 0
    for run in ("gaal", "gaal+diversity", "gaal+realism", "gaal-labelable", "gaal-retrieve",
                "simple-gan", "mixed"):
        run_id = f"{run}__seed0"
        if not (args.out / "queries" / run_id).is_dir():
            continue
        rounds = [r for r in args.rounds
                  if (args.out / "queries" / run_id / f"round_{r:04d}.npz").is_file()]
        if run == "mixed":
            rounds = [r for r in rounds if r % 6 != 5] or rounds
        safe = run.replace("+", "_")
        query_gallery(args.out, run_id, rounds, args.docs / f"{args.prefix}_queries_{safe}.png")
    for entry in (args.out / "cache" / "generators").glob("*/samples.png"):
        shutil.copy(entry, args.docs / f"{args.prefix}_generator_samples.png")
        meta = json.loads((entry.parent / "settings.json").read_text())
        print("generator", json.dumps(meta["report"]), meta["key"])
    np.set_printoptions(precision=4)


if __name__ == "__main__":
    main()
