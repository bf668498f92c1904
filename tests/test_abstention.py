"""Per-round abstentions derived from the running total, checked against a brute-force count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from activegen.errors import DataError
from activegen.experiments.abstention import abstention_per_round


def test_per_round_abstentions_match_a_simulated_oracle() -> None:
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    for seed in range(3):
        n_train, total = 10, 0
        for r in range(6):
            if r:
                asked = int(rng.integers(1, 6))
                refused = int(rng.integers(0, asked + 1))
                truth[(seed, r)] = (asked, refused)
                n_train += asked - refused
                total += refused
            for test_set in ("a", "b"):  # two test sets: one row each, same counts
                rows.append({"dataset": "d", "strategy": "gaal", "seed": seed, "round": r,
                             "test_set": test_set, "n_train": n_train, "n_abstained": total})
    rows.append({"dataset": "d", "strategy": "supervised", "seed": 0, "round": 0,
                 "test_set": "a", "n_train": 99, "n_abstained": 0})
    out = abstention_per_round(pd.DataFrame(rows).sample(frac=1.0, random_state=1))
    assert len(out) == len(truth)
    for row in out.itertuples():
        asked, refused = truth[(row.seed, row.round)]
        assert (row.asked, row.abstained) == (asked, refused)
        assert row.rate == pytest.approx(refused / asked)


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match="n_abstained"):
        abstention_per_round(pd.DataFrame({"dataset": [], "strategy": [], "seed": [],
                                           "round": [], "n_train": []}))
