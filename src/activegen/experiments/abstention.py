"""Per-round abstention of the oracle, from the tidy results table.

The table's ``n_abstained`` column is a running total (queries the oracle could not label so
far, as the loop counts it); this module derives what each round added, so every results table
ever written (old ones included) gives abstentions per round without a new column.
"""

from __future__ import annotations

import pandas as pd

from activegen.errors import DataError

_KEYS = ["dataset", "strategy", "seed"]


def abstention_per_round(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, strategy, seed, round > 0): ``asked`` (queries the round put to
    the oracle), ``abstained`` (of those, refused) and ``rate`` (``abstained / asked``).

    ``asked = Δn_train + Δn_abstained``: every query is either trained on or refused, whether or
    not a refusal costs budget. Rows of the supervised baseline are left out.
    """
    missing = [c for c in (*_KEYS, "round", "n_train", "n_abstained") if c not in frame]
    if missing:
        raise DataError(f"results table: no column(s) {missing} for per-round abstentions")
    runs = (frame[frame.strategy != "supervised"]
            .drop_duplicates([*_KEYS, "round"])
            .sort_values([*_KEYS, "round"]))
    grouped = runs.groupby(_KEYS, sort=False)
    out = runs[[*_KEYS, "round"]].copy()
    out["abstained"] = grouped["n_abstained"].diff()
    out["asked"] = grouped["n_train"].diff() + out["abstained"]
    out = out[out["round"] > runs.groupby(_KEYS, sort=False)["round"].transform("min")]
    out["rate"] = out["abstained"] / out["asked"].where(out["asked"] > 0)
    return out.astype({"abstained": int, "asked": int}).reset_index(drop=True)
