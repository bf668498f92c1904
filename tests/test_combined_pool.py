"""Pools concatenated from several splits, and the refusal of a test set that overlaps the pool."""

from __future__ import annotations

import numpy as np
import pytest

from activegen.data.combine import check_disjoint, concatenate
from activegen.data.registry import load_dataset
from activegen.errors import DataError
from activegen.experiments.config import DataConfig
from activegen.experiments.config import TestSetConfig as SetConfig
from activegen.experiments.runner import load_pool_and_tests, prepare_dataset


def test_a_list_of_splits_is_concatenated_in_order() -> None:
    one = prepare_dataset(DataConfig(dataset="digits", split="train", classes=[5, 7]))
    both = prepare_dataset(DataConfig(dataset="digits", split=["train", "all"], classes=[5, 7]))
    assert len(both) == 2 * len(one)
    np.testing.assert_array_equal(both.X[:len(one)], one.X)
    np.testing.assert_array_equal(both.y[len(one):], one.y)


def test_overlapping_test_set_is_refused_and_disjoint_one_accepted() -> None:
    pool = DataConfig(dataset="digits", classes=[5, 7], subset=100, split_seed=1)
    same = SetConfig(name="digits-again", dataset="digits", split="all", classes=[5, 7])
    with pytest.raises(DataError, match=r"test set 'digits-again': 100 of its 361 images"):
        load_pool_and_tests(pool, [same])
    # duplicates across concatenated splits leak into the held-out part: refused too
    doubled = DataConfig(dataset="digits", split=["train", "all"], classes=[5, 7],
                         test_fraction=0.3)
    with pytest.raises(DataError, match="digits-test"):
        load_pool_and_tests(doubled, [])
    ok_pool, tests = load_pool_and_tests(DataConfig(dataset="digits", classes=[5, 7],
                                                    test_fraction=0.3), [])
    assert set(tests) == {"digits-test"} and len(ok_pool) + len(tests["digits-test"]) == 361


def test_check_disjoint_counts_exact_duplicates_only() -> None:
    ds = load_dataset("digits").select_classes([5, 7])
    a, b = ds.take(np.arange(0, 200)), ds.take(np.arange(200, 361))
    check_disjoint(a, b, "b")  # no exact duplicate images between the halves
    c = concatenate([b, a.take(np.arange(3))], "c")
    with pytest.raises(DataError, match="3 of its 164 images"):
        check_disjoint(a, c, "c")
    with pytest.raises(DataError, match="splits differ"):
        concatenate([a, ds.resize((16, 16)).take(np.arange(3))], "x")
