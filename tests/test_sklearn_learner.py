"""Bring your own scikit-learn classifier: through the API and from a config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC, LinearSVC

from activegen._settings import BuildContext
from activegen.data import load_dataset
from activegen.errors import ConfigError
from activegen.experiments.config import parse_config
from activegen.experiments.results import read_results
from activegen.experiments.runner import run_experiment
from activegen.models import LEARNERS, SklearnLearner
from activegen.models.capabilities import Differentiable, Embedding, has_capability


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("digits")
    return ds.to_float(), ds.y


def test_wraps_a_classifier_like_sklearn_itself(digits) -> None:
    X, y = digits
    learner = SklearnLearner(10, estimator=SVC(C=2.0)).fit(X[:300], y[:300])
    reference = SVC(C=2.0).fit(X[:300].reshape(300, -1), y[:300])
    np.testing.assert_array_equal(learner.predict(X[300:]),
                                  reference.predict(X[300:].reshape(len(X) - 300, -1)))
    proba = learner.predict_proba(X[300:400])
    assert proba.shape == (100, 10) and np.allclose(proba.sum(axis=1), 1.0)
    assert learner.decision_function(X[:5]).shape == (5, 10)
    assert not has_capability(learner, Differentiable) and has_capability(learner, Embedding)


def test_classes_absent_from_the_labels_get_no_probability(digits) -> None:
    X, y = digits
    keep = np.flatnonzero(y < 3)[:60]
    learner = SklearnLearner(10, estimator=LogisticRegression(max_iter=300)).fit(X[keep], y[keep])
    proba = learner.predict_proba(X[:20])
    assert (proba[:, 3:] == 0).all() and np.allclose(proba.sum(axis=1), 1.0)
    d = LEARNERS.build("sklearn", {"estimator": "sklearn.svm.LinearSVC"},
                       BuildContext(n_classes=10)).fit(X[keep], y[keep]).decision_function(X[:20])
    assert d.shape == (20, 10) and (d[:, 3:] < d[:, :3].min(axis=1, keepdims=True)).all()


def test_a_pipeline_embeds_with_its_transform_steps(digits) -> None:
    X, y = digits
    learner = SklearnLearner(10, estimator=make_pipeline(PCA(7, random_state=0),
                                                         LinearSVC())).fit(X[:200], y[:200])
    assert learner.embed(X[:30]).shape == (30, 7)
    assert SklearnLearner(10, estimator=LinearSVC()).fit(X[:200], y[:200]).embed(
        X[:30]).shape == (30, 64)


@pytest.mark.parametrize("estimator,match", [
    ("sklearn.decomposition.PCA", "not a scikit-learn classifier"),
    ("sklearn.linear_model.Ridge", "not a scikit-learn classifier"),
    ("sklearn.svm.NoSuchSVC", "cannot import"),
    ("SVC", "dotted path"),
])
def test_bad_estimators_are_refused(estimator: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SklearnLearner(2, estimator=estimator)


def _config(strategy: dict, **learner) -> dict:
    return {"name": "sk", "seeds": [0], "supervised": True,
            "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
            "learner": {"name": "sklearn", **learner},
            "loop": {"initial": 6, "batch": 4, "budget": 18}, "strategies": [strategy]}


def test_from_a_config_through_an_experiment(tmp_path: Path) -> None:
    config = parse_config(_config({"name": "coreset"}, estimator="sklearn.svm.SVC",
                                  params={"C": 2.0}))
    results = read_results(run_experiment(config, tmp_path / "out", progress=False))
    assert set(results["strategy"]) == {"coreset", "supervised"}
    assert (results[results["strategy"] == "coreset"]["n_labels"]).max() == 18
    assert (results["accuracy"] > 0.6).all()


def test_a_config_refuses_synthesis_with_a_sklearn_learner() -> None:
    with pytest.raises(ConfigError, match=r"'gaal'.*Differentiable.*'sklearn'"):
        parse_config(_config({"name": "gaal"}, estimator="sklearn.svm.SVC"))
    with pytest.raises(ConfigError, match="not a scikit-learn classifier"):
        parse_config(_config({"name": "random"}, estimator="sklearn.linear_model.Ridge"))
