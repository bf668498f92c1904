"""The linear probe and label spreading on frozen features: the pool's structure helps, and the
learned model exports as a plain linear model file."""

from __future__ import annotations

import numpy as np
import pytest

from activegen.data import load_dataset
from activegen.errors import ActivegenError, DataError
from activegen.features import PixelSource
from activegen.models.export import ExportedModel, load_model
from activegen.models.semi_supervised import LabelSpreadingLearner, LinearProbe


def two_strips(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two long parallel strips, one per class, a gap of 1 between them: the classes are
    linearly separable, but two labels at opposite ends mislead a probe that sees only them."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, 2 * n)
    y = np.repeat([0, 1], n)
    F = np.stack([x, y + rng.normal(0, 0.05, 2 * n)], axis=1).astype(np.float32)
    return F, y


def test_label_spreading_follows_the_pool_where_the_probe_cannot() -> None:
    F, y = two_strips()
    labeled = np.array([int(np.argmin(F[:300, 0])), 300 + int(np.argmax(F[300:, 0]))])
    probe = LinearProbe(2)
    probe.prepare(F)
    probe.fit(F[labeled], y[labeled])
    spread = LabelSpreadingLearner(2, metric="euclidean")
    spread.prepare(F)
    spread.fit(F[labeled], y[labeled])
    assert spread.score(F, y) >= 0.95
    assert spread.score(F, y) >= probe.score(F, y) + 0.2


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = load_dataset("digits")
    return data.X, data.to_float(), data.y


def test_label_spreading_beats_the_probe_on_digit_pixels() -> None:
    _, X, y = _digits()
    F = PixelSource().transform(X)
    labeled = np.random.default_rng(0).choice(len(F), 30, replace=False)
    scores = {}
    for learner in (LinearProbe(10), LabelSpreadingLearner(10)):
        learner.prepare(F)
        learner.fit(F[labeled], y[labeled])
        scores[learner.name] = learner.score(F, y)
    assert scores["label-spreading"] > scores["linear-probe"]


def test_exported_model_file_predicts_what_the_learner_predicts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    images, X, y = _digits()
    F = PixelSource().transform(X)
    labeled = np.random.default_rng(1).choice(len(F), 40, replace=False)
    learner = LabelSpreadingLearner(10)
    learner.prepare(F)
    learner.fit(F[labeled], y[labeled])
    model = learner.linear_model()
    np.testing.assert_allclose(model.decision_function(F), learner.decision_function(F),
                               rtol=1e-6, atol=1e-6)
    ExportedModel(model.coef, model.intercept, model.feature_mean, model.feature_scale,
                  [str(c) for c in range(10)], 8, 1, "pixels", "pixels").save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    proba = loaded.proba_from_features(loaded.extractor().transform(images))
    assert np.array_equal(proba.argmax(axis=1), learner.predict(F))


def test_feature_maps_of_one_pixel_are_feature_vectors() -> None:
    _, X, y = _digits()
    F = PixelSource().transform(X)
    labeled = np.arange(50)
    flat, maps = LabelSpreadingLearner(10), LabelSpreadingLearner(10)
    flat.prepare(F)
    maps.prepare(F[:, :, None, None])
    flat.fit(F[labeled], y[labeled])
    maps.fit(F[labeled][:, :, None, None], y[labeled])
    assert np.array_equal(flat.predict(F), maps.predict(F[:, :, None, None]))


def test_label_spreading_needs_the_pool_and_the_probe_does_not() -> None:
    F, y = two_strips(50)
    with pytest.raises(ActivegenError, match="prepare"):
        LabelSpreadingLearner(2).fit(F[[0, 60]], y[[0, 60]])
    assert LinearProbe(2).fit(F[[0, 60]], y[[0, 60]]).predict(F).shape == (100,)


def test_classes_never_labeled_are_never_predicted() -> None:
    _, X, y = _digits()
    F = PixelSource().transform(X)
    labeled = np.flatnonzero(y < 3)[:30]
    learner = LabelSpreadingLearner(10)
    learner.prepare(F)
    learner.fit(F[labeled], y[labeled])
    assert learner.predict_proba(F).shape == (len(F), 10)
    assert set(np.unique(learner.predict(F))) <= {0, 1, 2}
    assert learner.linear_model().coef.shape == (10, F.shape[1])


def test_two_classes_export_one_hyperplane() -> None:
    F, y = two_strips(60)
    learner = LabelSpreadingLearner(2, metric="euclidean")
    learner.prepare(F)
    learner.fit(F[[0, 1, 60, 61]], y[[0, 1, 60, 61]])
    model = learner.linear_model()
    assert model.coef.shape == (1, 2) and model.intercept.shape == (1,)
    np.testing.assert_allclose(model.decision_function(F), learner.decision_function(F),
                               rtol=1e-6, atol=1e-6)


def test_features_of_another_dimension_are_refused() -> None:
    F, _ = two_strips(30)
    learner = LinearProbe(2)
    learner.prepare(F)
    with pytest.raises(DataError, match="dimensions"):
        learner.fit(np.zeros((2, 3), dtype=np.float32), np.array([0, 1]))
