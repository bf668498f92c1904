"""The in-memory Dataset type and its transforms."""

from __future__ import annotations

import numpy as np
import pytest

from activegen.data import Dataset
from activegen.errors import DataError


def make(n_per_class: tuple[int, ...] = (10, 20, 30), size: int = 4, channels: int = 1) -> Dataset:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)]).astype(np.int64)
    X = np.empty((len(y), size, size, channels), dtype=np.uint8)
    X[:] = (np.arange(len(y)) % 256).astype(np.uint8)[:, None, None, None]  # row id as pixels
    classes = tuple("abcdefghij"[: len(n_per_class)])
    return Dataset(X, y, classes, "toy")


def test_validation() -> None:
    with pytest.raises(DataError, match=r"toy: images must be \[N, H, W, C\]"):
        Dataset(np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.int64), ("a",), "toy")
    with pytest.raises(DataError, match="toy: images must be uint8"):
        Dataset(np.zeros((2, 4, 4, 1), np.float32), np.zeros(2, np.int64), ("a",), "toy")
    with pytest.raises(DataError, match=r"toy: labels span \[0, 3\] but there are 2 classes"):
        Dataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 3]), ("a", "b"), "toy")
    ds = Dataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1], np.int32), ("a", "b"))
    assert ds.y.dtype == np.int64


def test_select_classes_by_name_relabels_in_order() -> None:
    ds = make()
    sub = ds.select_classes(["c", "a"])
    assert sub.classes == ("c", "a")
    assert len(sub) == 40
    # Relabelled in the requested order: "c" -> 0, "a" -> 1.
    assert np.bincount(sub.y).tolist() == [30, 10]
    np.testing.assert_array_equal(sub.X[sub.y == 1, 0, 0, 0], np.arange(10))


def test_select_classes_by_value() -> None:
    ds = make()
    sub = ds.select_classes([1, 2])
    assert sub.classes == ("b", "c")
    assert np.bincount(sub.y).tolist() == [20, 30]


def test_select_digit_classes_by_value_means_name() -> None:
    y = np.array([3, 5, 5, 7])
    ds = Dataset(np.zeros((4, 2, 2, 1), np.uint8), y, tuple(str(d) for d in range(10)), "d")
    sub = ds.select_classes([5, 3])
    assert sub.classes == ("5", "3") and sub.y.tolist() == [1, 0, 0]


def test_select_classes_errors() -> None:
    ds = make()
    with pytest.raises(DataError, match=r"toy: class 'z' is not in the data"):
        ds.select_classes(["z"])
    with pytest.raises(DataError, match="requested twice"):
        ds.select_classes(["a", 0])
    absent = Dataset(ds.X[:10], ds.y[:10], ("a", "b"), "toy")  # class "b" has no images
    with pytest.raises(DataError, match=r"toy: no images of class \['b'\]"):
        absent.select_classes(["a", "b"])


def test_resize_shape() -> None:
    ds = make(size=8, channels=3)
    small = ds.resize((4, 6))
    assert small.X.shape == (60, 4, 6, 3) and small.X.dtype == np.uint8
    np.testing.assert_array_equal(small.y, ds.y)
    # Constant images stay constant.
    assert (small.X[5] == ds.X[5, 0, 0, 0]).all()
    assert ds.resize((8, 8)) is ds


def test_pad_to_centres() -> None:
    ds = Dataset(np.full((2, 2, 4, 1), 9, np.uint8), np.array([0, 0]), ("a",), "toy")
    padded = ds.pad_to((6, 8))
    assert padded.X.shape == (2, 6, 8, 1)
    rows, cols = np.nonzero(padded.X[0, :, :, 0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 3, 2, 5)
    assert padded.X.sum() == ds.X.sum()
    with pytest.raises(DataError, match="cannot pad 2x4 images to the smaller 2x2"):
        ds.pad_to((2, 2))


def test_subset_stratified_and_seeded() -> None:
    ds = make()
    sub = ds.subset(12, seed=3)
    assert len(sub) == 12
    assert np.bincount(sub.y).tolist() == [2, 4, 6]
    again = ds.subset(12, seed=3)
    np.testing.assert_array_equal(sub.X, again.X)
    other = ds.subset(12, seed=4)
    assert not np.array_equal(sub.X, other.X)
    ids = sub.X[:, 0, 0, 0]
    assert len(set(ids.tolist())) == 12
    with pytest.raises(DataError, match="asked for a subset of 61 but there are 60"):
        ds.subset(61, seed=0)


def test_split_disjoint_and_deterministic() -> None:
    ds = make()
    train, test = ds.split(0.25, seed=7)
    assert len(train) + len(test) == len(ds) and len(test) == 15
    train_ids = set(train.X[:, 0, 0, 0].tolist())
    test_ids = set(test.X[:, 0, 0, 0].tolist())
    assert not train_ids & test_ids
    assert train_ids | test_ids == set(range(60))
    assert test.name == "toy-test"
    # Stratified: class proportions kept in the test part.
    assert np.bincount(test.y, minlength=3).tolist() == [2, 5, 8]
    train2, test2 = ds.split(0.25, seed=7)
    np.testing.assert_array_equal(test.X, test2.X)
    np.testing.assert_array_equal(train.y, train2.y)
    with pytest.raises(DataError, match="test_fraction must be in"):
        ds.split(1.0, seed=0)


def test_to_float_scale_and_shape() -> None:
    X = np.zeros((2, 3, 5, 3), np.uint8)
    X[0, 1, 2] = [255, 0, 51]
    ds = Dataset(X, np.array([0, 0]), ("a",))
    x = ds.to_float()
    assert x.shape == (2, 3, 3, 5) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert x[0, :, 1, 2].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_to_channels() -> None:
    ds = make(channels=1)
    rgb = ds.to_channels(3)
    assert rgb.X.shape[-1] == 3
    back = rgb.to_channels(1)
    np.testing.assert_array_equal(back.X, ds.X)
