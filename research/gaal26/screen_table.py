"""The screening table of research/gaal26/plan.md from an experiment folder's results.csv:
per strategy, R (refused / asked, all rounds and seeds), A (mean `SHIFTED` accuracy at
350 labels), S (mean `SAME` accuracy at 250), eligibility (R <= 0.25 and S >= S(random) -
0.005), and the seconds a run took (fit + query + label, mean over seeds).

    python research/gaal26/screen_table.py OUT [--shifted digits-28] [--same mnist10k-test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from activegen.experiments.abstention import abstention_per_round


def table(frame: pd.DataFrame, shifted: str, same: str) -> pd.DataFrame:
    rounds = abstention_per_round(frame[frame.test_set == shifted])
    refusal = rounds.groupby("strategy")[["abstained", "asked"]].sum()
    at = lambda test, n: (frame[(frame.test_set == test) & (frame.n_labels == n)]  # noqa: E731
                          .groupby("strategy").accuracy.mean())
    seconds = (frame[frame.test_set == shifted]
               .assign(s=lambda f: f.fit_seconds + f.query_seconds + f.label_seconds)
               .groupby(["strategy", "seed"]).s.sum().groupby("strategy").mean())
    out = pd.DataFrame({"A_shifted_350": at(shifted, 350), "S_same_250": at(same, 250),
                        "run_seconds": seconds})
    out["R_refused"] = (refusal.abstained / refusal.asked).reindex(out.index).fillna(0.0)
    floor = out.loc["random", "S_same_250"] - 0.005
    out["eligible"] = (out.R_refused <= 0.25) & (out.S_same_250 >= floor)
    return out.sort_values("A_shifted_350", ascending=False)[
        ["R_refused", "A_shifted_350", "S_same_250", "eligible", "run_seconds"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shifted", default="digits-28")
    parser.add_argument("--same", default="mnist10k-test")
    args = parser.parse_args()
    frame = pd.read_csv(args.out / "results.csv")
    out = table(frame, args.shifted, args.same)
    print("| strategy | " + " | ".join(out.columns) + " |")
    print("|---" * (len(out.columns) + 1) + "|")
    for name, row in out.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
