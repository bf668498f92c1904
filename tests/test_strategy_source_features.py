"""Distance strategies measuring in a source of the feature layer (``features =
"self-supervised"``, ``"timm:…"``, ``"open_clip:…"``, ``"torchvision:…"``): they pick what the
pure selection functions pick on the source's vectors of the pool, the encoder is trained once
per pool and settings (cached) whoever asks for it, they need no learner (a cold start), and a
bad source is refused when the config is read, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._experiments import small_config

from activegen.data import Dataset
from activegen.errors import ConfigError
from activegen.features import FeaturesSettings, SelfSupervisedSettings, source_for
from activegen.features import self_supervised as ssl
from activegen.strategies import STRATEGIES, PrepareContext, QueryState, Strategy
from activegen.strategies.cold_start import probcover_delta, probcover_select, typiclust_select

#: a tiny encoder and one short epoch: the tests check relations, not accuracy
TINY = SelfSupervisedSettings(epochs=1, batch_size=32, width=4, projection_dim=8,
                              projection_hidden=16)
SSL = {"features": "self-supervised", "self_supervised": TINY.model_dump()}
K = 6


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training and extraction on one thread whatever the load: features computed twice are
    then the same bits."""
    from activegen.features import _threads

    monkeypatch.setattr(_threads, "idle_cores", lambda: 1)


@pytest.fixture(scope="module")
def small_pool(digits: Dataset) -> Dataset:
    """96 of the 8×8 digits, ten classes."""
    return digits.take(np.arange(96), "digits96")


class _Counted:
    """Counts calls of ``train_encoder`` (the cache must not call it again)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = ssl.train_encoder

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(ssl, "train_encoder", counted)


def _prepared(name: str, params: dict[str, Any], pool: Dataset, cache: Path) -> Strategy:
    strategy = STRATEGIES.build(name, params)
    strategy.prepare(PrepareContext(pool=pool, cache_dir=cache))
    return strategy


def _reference(pool: Dataset, cache: Path, settings: FeaturesSettings) -> np.ndarray:
    """The source's vectors of the pool, built and fitted by the feature layer itself."""
    source = source_for(settings, pool.image_shape[2], cache, seed=0, display="none")
    X = pool.to_float()
    source.fit(X)
    return source.transform(X)


def _state(pool: Dataset, labeled: np.ndarray, seed: int) -> QueryState:
    queried = np.zeros(len(pool), dtype=bool)
    queried[labeled] = True
    return QueryState(pool.to_float(), queried, labeled, None, pool.n_classes,  # type: ignore[arg-type]
                      np.random.default_rng(seed))


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


def _expected(name: str, feats: np.ndarray, labeled: np.ndarray, seed: int,
              n_classes: int) -> list[int]:
    rng = np.random.default_rng(seed)
    if name == "typiclust":
        return typiclust_select(feats, labeled, K, rng).tolist()
    if name == "probcover":
        delta = probcover_delta(feats, n_classes, 0.95, int(rng.integers(2**31 - 1)))
        return probcover_select(feats, labeled, K, delta, rng).tolist()
    candidates = np.setdiff1d(np.arange(len(feats)), labeled)
    return candidates[farthest_first(feats[candidates], feats[labeled], K)].tolist()


def _check_picks(name: str, params: dict[str, Any], pool: Dataset, cache: Path,
                 reference: np.ndarray) -> Strategy:
    strategy = _prepared(name, params, pool, cache)
    for labeled in (np.empty(0, dtype=np.int64), np.arange(0, 40, 4)):
        if name == "coreset" and not len(labeled):
            continue  # a random first centre: checked by the contract tests
        picks = strategy.query(_state(pool, labeled, 5), K).indices.tolist()
        assert len(set(picks)) == K and not set(picks) & set(labeled.tolist())
        assert picks == _expected(name, reference, labeled, 5, pool.n_classes), name
    return strategy


@pytest.mark.parametrize("name", ["typiclust", "probcover", "coreset"])
def test_self_supervised_picks_are_the_selection_on_the_sources_vectors(
        name: str, small_pool: Dataset, tmp_path: Path) -> None:
    strategy = STRATEGIES.build(name, SSL)
    assert strategy.requires == ()  # no learner: a valid cold start
    assert not strategy.needs_images  # the vectors are read by pool index
    with pytest.raises(RuntimeError, match="prepare"):
        strategy.query(_state(small_pool, np.arange(10), 0), K)
    reference = _reference(small_pool, tmp_path,
                           FeaturesSettings(source="self-supervised", self_supervised=TINY))
    assert reference.shape == (len(small_pool), 4 * TINY.width)
    _check_picks(name, SSL, small_pool, tmp_path, reference)
    # in other features than the pixels': the picks differ from the ones on the input
    on_input = STRATEGIES.build(name, {"features": "input"}).query(
        _state(small_pool, np.arange(0, 40, 4), 5), K).indices.tolist()
    assert on_input != _expected(name, reference, np.arange(0, 40, 4), 5, small_pool.n_classes)


def test_the_encoder_is_trained_once_for_every_strategy_and_prepare(
        small_pool: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = _Counted(monkeypatch)
    typiclust = _prepared("typiclust", SSL, small_pool, tmp_path)
    coreset = _prepared("coreset", SSL, small_pool, tmp_path)
    _prepared("typiclust", SSL, small_pool, tmp_path)  # a second prepare
    medal = _prepared("medal", SSL, small_pool, tmp_path)
    assert counted.calls == 1
    assert len(list((tmp_path / "encoders").glob("*/model.pt"))) == 1
    (entry,) = typiclust.provenance()
    assert entry["kind"] == "features" and entry["key"].startswith("self-supervised:")
    assert coreset.provenance() == medal.provenance() == [entry]
    np.testing.assert_array_equal(typiclust.source_features.pool_features,  # type: ignore[attr-defined]
                                  coreset.feature_map.pool_features)  # type: ignore[attr-defined]
    other = {**SSL, "self_supervised": TINY.model_copy(update={"seed": 1}).model_dump()}
    assert _prepared("probcover", other, small_pool, tmp_path).provenance() != [entry]
    assert counted.calls == 2  # other settings: another encoder


def test_the_self_supervised_table_is_read_only_by_that_source(small_pool: Dataset,
                                                               tmp_path: Path) -> None:
    plain = STRATEGIES.build("typiclust", {"features": "pixels",
                                           "self_supervised": {"epochs": 1}})
    plain.prepare(PrepareContext(pool=small_pool, cache_dir=tmp_path))
    assert plain.provenance() == [] and not (tmp_path / "encoders").exists()
    with pytest.raises(ConfigError, match=r"self_supervised\.epoch: unknown setting"):
        STRATEGIES.build("coreset", {"features": "self-supervised",
                                     "self_supervised": {"epoch": 1}})


class _RowsPool:
    """A pool whose examples are feature rows ``[N, d]``, not images."""

    def __init__(self, X: np.ndarray) -> None:
        self._X = X

    def to_float(self) -> np.ndarray:
        return self._X


@pytest.mark.parametrize("name", ["typiclust", "probcover", "coreset", "medal"])
def test_a_source_of_images_on_feature_rows_is_refused_naming_both(name: str,
                                                                   tmp_path: Path) -> None:
    strategy = STRATEGIES.build(name, SSL)
    rows = _RowsPool(np.random.default_rng(0).random((30, 5), dtype=np.float32))
    with pytest.raises(ConfigError, match=rf"strategy '{name}': features = 'self-supervised' "
                                          r"trains a SimCLR encoder on the pool's images, but "
                                          r"the pool is feature rows \[30, 5\]"):
        strategy.prepare(PrepareContext(pool=rows, cache_dir=tmp_path))  # type: ignore[arg-type]


def test_a_query_on_another_pool_than_the_prepared_one_is_refused(
        small_pool: Dataset, tmp_path: Path) -> None:
    from activegen.errors import DataError

    for name in ("typiclust", "coreset"):
        strategy = _prepared(name, SSL, small_pool, tmp_path)
        with pytest.raises(DataError, match="prepared on a pool of 96"):
            strategy.query(_state(small_pool.take(np.arange(50)), np.arange(10), 0), K)


def test_bad_sources_are_refused_when_the_config_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    loop = {"initial": 20, "batch": 10, "budget": 40}
    for spec in (f"timm:resnet18@{missing}", f"open_clip:ViT-B-32:laion@{missing}",
                 f"torchvision:resnet18@{missing}"):
        with pytest.raises(ConfigError, match=rf"cold_start.*features.*no such weights file "
                                              rf"{missing}"):
            small_config(loop={**loop, "cold_start": {"name": "typiclust", "features": spec}})
        with pytest.raises(ConfigError, match=rf"strategies.*features.*no such weights file "
                                              rf"{missing}"):
            small_config(strategies=[{"name": "coreset", "features": spec}])
        for name in ("probcover", "medal"):
            with pytest.raises(ConfigError, match=rf"'{name}': features: .*nope\.pt"):
                STRATEGIES.build(name, {"features": spec})
    for bad in ("simclr", "timm:", "open_clip:ViT-B-32:laion@"):
        with pytest.raises(ConfigError, match=r"features"):
            small_config(loop={**loop, "cold_start": {"name": "probcover", "features": bad}})
        with pytest.raises(ConfigError, match=r"features"):
            small_config(strategies=[{"name": "coreset", "features": bad}])


def test_a_learner_free_source_is_a_valid_cold_start_and_embedding_is_not() -> None:
    loop = {"initial": 20, "batch": 10, "budget": 40}
    for name in ("typiclust", "probcover", "coreset"):
        config = small_config(loop={**loop, "cold_start": {"name": name, **SSL}})
        assert config.loop.cold_start is not None
    with pytest.raises(ConfigError, match="self-supervised"):
        small_config(loop={**loop, "cold_start": {"name": "typiclust"}})
    with pytest.raises(ConfigError, match="reads the learner"):  # MedAL's entropy filter
        small_config(loop={**loop, "cold_start": {"name": "medal", **SSL}})


def test_a_self_supervised_cold_start_runs_in_an_experiment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from activegen.engine import derive_seed
    from activegen.experiments.runner import load_experiment_data, run_experiment

    counted = _Counted(monkeypatch)
    config = small_config(seeds=[0], strategies=[{"name": "random"}, {"name": "coreset", **SSL}],
                          loop={"initial": 20, "batch": 10, "budget": 40,
                                "cold_start": {"name": "typiclust", **SSL}})
    out = tmp_path / "out"
    run_experiment(config, out)
    assert counted.calls == 1  # one encoder for the cold start and core-set, every run
    pool, _ = load_experiment_data(config)
    reference = _reference(pool, out / "cache",
                           FeaturesSettings(source="self-supervised", self_supervised=TINY))
    expected = typiclust_select(reference, np.empty(0, dtype=np.int64), 20,
                                np.random.default_rng(derive_seed(0, 0, 3)))
    for run in ("random__seed0", "coreset__seed0"):
        first = np.load(out / "queries" / run / "round_0000.npz")["indices"]
        assert sorted(first.tolist()) == sorted(expected.tolist())
    results = (out / "runs" / "coreset__seed0.csv").read_text()
    assert results.count("\n") >= 3  # rounds at 20, 30 and 40 labels


def test_with_self_supervised_run_features_the_strategy_shares_their_encoder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``[features] source = "self-supervised"`` the examples are feature rows; the
    strategy still trains on the pool's images (it prepares on them) and reads its vectors by
    pool index, so it is accepted, and with the same settings it reads the same encoder."""
    from activegen.experiments.runner import run_experiment

    counted = _Counted(monkeypatch)
    config = small_config(seeds=[0], strategies=[{"name": "coreset", **SSL}],
                          features={"source": "self-supervised", "self_supervised": SSL[
                              "self_supervised"]},
                          loop={"initial": 20, "batch": 10, "budget": 30,
                                "cold_start": {"name": "probcover", **SSL}})
    run_experiment(config, tmp_path / "out")
    assert counted.calls == 1
    assert (tmp_path / "out" / "runs" / "coreset__seed0.csv").is_file()


def test_a_self_supervised_cold_start_in_active_learner_with_nothing_labeled(
        small_pool: Dataset, tmp_path: Path) -> None:
    from activegen import ActiveLearner
    from activegen.engine import derive_seed
    from activegen.models import LinearSVM

    cold = _prepared("typiclust", SSL, small_pool, tmp_path)
    strategy = _prepared("coreset", SSL, small_pool, tmp_path)
    X = small_pool.to_float()
    learner = ActiveLearner(X, small_pool.n_classes, LinearSVM(small_pool.n_classes), strategy,
                            seed=0, cold_start=cold, batch_size=12)
    first = learner.ask()
    reference = _reference(small_pool, tmp_path,
                           FeaturesSettings(source="self-supervised", self_supervised=TINY))
    expected = typiclust_select(reference, np.empty(0, dtype=np.int64), 12,
                                np.random.default_rng(derive_seed(0, 0, 3)))
    assert first.indices.tolist() == expected.tolist()
    learner.tell(first, small_pool.y[first.indices])
    second = learner.ask()  # core-set in the same vectors, from the labeled centres
    labeled = first.indices
    candidates = np.setdiff1d(np.arange(len(X)), labeled)
    assert second.indices.tolist() == candidates[
        farthest_first(reference[candidates], reference[labeled], 12)].tolist()


# -- pretrained backbones, through fake library modules (timm does not import here) ---------


@pytest.fixture()
def fake_timm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """``timm:tiny@<file>``: the fake timm of the pretrained-source tests, saved weights."""
    from activegen.features import pretrained
    from test_features_pretrained import fake_timm as make_fake
    from test_features_pretrained import saved

    monkeypatch.setattr(pretrained, "import_library", lambda library: make_fake())
    _, path = saved(tmp_path, num_classes=5)
    return f"timm:tiny@{path}"


@pytest.mark.parametrize("name", ["typiclust", "probcover", "coreset"])
def test_pretrained_picks_are_the_selection_on_the_backbones_vectors(
        name: str, fake_timm: str, small_pool: Dataset, tmp_path: Path) -> None:
    params = {"features": fake_timm, "image_size": 12}
    strategy = STRATEGIES.build(name, params)
    assert strategy.requires == ()
    reference = _reference(small_pool, tmp_path, FeaturesSettings(source=fake_timm,
                                                                  image_size=12))
    assert reference.shape == (len(small_pool), 6)
    prepared = _check_picks(name, params, small_pool, tmp_path, reference)
    (entry,) = prepared.provenance()
    assert entry["kind"] == "features" and entry["key"].startswith("timm:tiny:sha256=")
    config = small_config(loop={"initial": 20, "batch": 10, "budget": 40,
                                "cold_start": {"name": name, **params}})
    assert config.loop.cold_start is not None
