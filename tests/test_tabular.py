"""A library user with tabular data and their own model: ``[N, d]`` pools are first-class,
a pipeline's features are taken after its transform steps, and mistakes (labels that are not
classes, a test set that does not fit the pool, asking past the pool) are named where they
are made."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from activegen import STRATEGIES, ActiveLearner, SklearnLearner
from activegen.errors import DataError, RunFinished


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X.astype(np.float32), y


def farthest_first(points: np.ndarray, centres: np.ndarray, k: int) -> list[int]:
    """Greedy k-center by brute force: each pick the point farthest from its nearest centre."""
    points, centres = points.astype(np.float64), centres.astype(np.float64)
    nearest = ((points[:, None] - centres[None]) ** 2).sum(-1).min(axis=1)
    picks = []
    for _ in range(k):
        pick = int(nearest.argmax())
        picks.append(pick)
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(-1))
    return picks


def _pipeline() -> SklearnLearner:
    return SklearnLearner(2, estimator=make_pipeline(StandardScaler(), SVC()))


def test_a_tabular_pool_and_test_set_run_as_they_are(cancer) -> None:
    X, y = cancer
    learner = ActiveLearner(X[:400], 2, _pipeline(), STRATEGIES.build("margin", {}), seed=0,
                            test_sets={"test": (X[400:], y[400:])})
    for _ in range(3):
        query = learner.ask(10)
        learner.tell(query, y[:400][query.indices])
    final = learner.fit()
    assert final.n_train == 30 and final.accuracy["test"] > 0.8


def test_core_set_on_a_pipeline_measures_after_its_transform_steps(cancer) -> None:
    """The breast cancer features range from 1e-3 to 1e3: in raw units two of them decide
    every distance. Core-set reads ``embed``, the pipeline's scaled features."""
    X, y = cancer
    pool = X[:400]
    engine = ActiveLearner(pool, 2, _pipeline(), STRATEGIES.build("coreset", {}), seed=0)
    first = engine.ask(10)  # a seeded random draw: nothing is labeled
    engine.tell(first, y[first.indices])
    second = engine.ask(5)
    labeled = first.indices
    scaler = StandardScaler().fit(pool[labeled])
    np.testing.assert_allclose(engine.learner.embed(pool[:5]), scaler.transform(pool[:5]),
                               rtol=1e-5, atol=1e-5)
    scaled = scaler.transform(pool).astype(np.float32)
    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    expected = unlabeled[farthest_first(scaled[unlabeled], scaled[labeled], 5)]
    raw = unlabeled[farthest_first(pool[unlabeled], pool[labeled], 5)]
    assert sorted(second.indices) == sorted(expected)
    assert sorted(raw) != sorted(expected)  # the raw units would pick other rows


@pytest.mark.parametrize(("labels", "named"), [
    ([0.5, 1.0], r"got 0\.5 at position 0"),               # was truncated to 0
    ([1.0, np.nan], r"got nan at position 1"),             # was -9223372036854775808
    (["benign", "malignant"], r"got 'benign' at position 0"),
    ([True, False], r"got True at position 0"),
    ([0, 2], r"classes 0\.\.1 or -1 \(can't tell\); got 2 at position 1"),
    ([0], r"1 labels for 2 examples"),
])
def test_answers_that_are_not_classes_are_refused_naming_them(cancer, labels, named) -> None:
    X, _ = cancer
    engine = ActiveLearner(X[:50], 2, _pipeline(), STRATEGIES.build("random", {}), seed=0)
    query = engine.ask(2)
    with pytest.raises(DataError, match=named):
        engine.tell(query, np.asarray(labels, dtype=object if isinstance(labels[0], bool)
                                      else None))
    engine.tell(query, np.array([1.0, 0.0]))  # whole-number floats are classes
    with pytest.raises(DataError, match=r"fit labels must be .*got 0\.5"):
        _pipeline().fit(X[:2], np.array([0.5, 1.0]))
    with pytest.raises(DataError, match=r"initial labels .*got 1\.7"):
        ActiveLearner(X[:50], 2, _pipeline(), STRATEGIES.build("random", {}),
                      initial=(np.array([0, 1]), np.array([0.0, 1.7])))


@pytest.mark.parametrize(("test_set", "named"), [
    (lambda X, y: (X[:, :5], y), r"test set 'test': examples of shape \[5\], but the pool's "
                                 r"are \[30\]"),
    (lambda X, y: (X, y[1:]), r"test set 'test''s labels: 168 labels for 169 examples"),
    (lambda X, y: (X, y + 0.5), r"test set 'test''s labels must be .*got 0\.5"),
    (lambda X, y: (X, y + 1), r"test set 'test''s labels must be integer classes 0\.\.1; got 2"),
    (lambda X, y: (X, np.where(y == 1, "malignant", "benign")), r"got 'benign'"),
    (lambda X, y: (np.where(X > 100, np.nan, X), y), r"test set 'test': row \d+ holds NaN"),
    (lambda X, y: X, r"test set 'test' must be a pair \(X, y\)"),
    (lambda X, y: (X[:0], y[:0]), r"test set 'test' is empty"),
])
def test_a_test_set_is_checked_when_the_learner_is_built(cancer, test_set, named) -> None:
    X, y = cancer
    with pytest.raises(DataError, match=named):
        ActiveLearner(X[:400], 2, _pipeline(), STRATEGIES.build("random", {}),
                      test_sets={"test": test_set(X[400:], y[400:])})


def test_a_pool_with_nan_is_refused_naming_the_row(cancer) -> None:
    X, _ = cancer
    bad = X[:50].copy()
    bad[7, 3] = np.nan
    with pytest.raises(DataError, match="X_pool: row 7 holds NaN"):
        ActiveLearner(bad, 2, _pipeline(), STRATEGIES.build("random", {}))


def test_asking_past_the_pool_raises_at_once_saying_why(cancer) -> None:
    """It returned an empty query first (and raised only on the ask after)."""
    X, y = cancer
    engine = ActiveLearner(X[:20], 2, _pipeline(), STRATEGIES.build("random", {}), seed=0)
    sizes = []
    for _ in range(3):
        query = engine.ask(8)
        sizes.append(len(query))
        engine.tell(query, y[:20][query.indices])
    assert sizes == [8, 8, 4]
    with pytest.raises(RunFinished, match="the pool is exhausted: all 20 examples"):
        engine.ask(8)
    assert engine.done and engine.fit().n_train == 20
    with pytest.raises(RunFinished, match="pool is exhausted"):
        engine.ask(8)  # and again, the same reason
