"""Bayesian acquisition against brute force: BALD, BatchBALD, MC measures, MC dropout."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from activegen._settings import BuildContext
from activegen.errors import ConfigError
from activegen.models.capabilities import MCDropout, check_compatible, has_capability
from activegen.strategies import STRATEGIES, QueryState
from activegen.strategies.bayesian import (
    bald_scores,
    batchbald_select,
    mc_entropy_scores,
    mean_std_scores,
    variation_ratios_scores,
)
from batchbald_reference import batchbald_select_reference


def _samples(n: int, t: int, k: int, seed: int, sharp: float = 2.0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, t, k)) * sharp
    p = np.exp(logits)
    return p / p.sum(axis=2, keepdims=True)


def _mi_brute(samples: np.ndarray, rows: list[int]) -> float:
    """I(y_S; ω) by enumerating every class configuration of S with plain loops."""
    _, t, k = samples.shape
    joint_h = 0.0
    for config in itertools.product(range(k), repeat=len(rows)):
        p = sum(math.prod(samples[r, s, c] for r, c in zip(rows, config, strict=True))
                for s in range(t)) / t
        if p > 0:
            joint_h -= p * math.log(p)
    cond = 0.0
    for r in rows:
        for s in range(t):
            cond -= sum(q * math.log(q) for q in samples[r, s] if q > 0) / t
    return joint_h - cond


def test_bald_equals_analytic_mutual_information() -> None:
    samples = _samples(12, 7, 4, seed=0)
    expected = [_mi_brute(samples, [i]) for i in range(12)]
    np.testing.assert_allclose(bald_scores(samples), expected, rtol=1e-10, atol=1e-12)
    assert (bald_scores(samples) >= -1e-12).all()


def test_bald_is_zero_when_every_pass_agrees() -> None:
    one = _samples(5, 1, 3, seed=1)
    same = np.repeat(one, 6, axis=1)
    np.testing.assert_allclose(bald_scores(same), 0.0, atol=1e-12)


def test_mc_measures_match_their_formulas() -> None:
    samples = _samples(9, 5, 3, seed=2)
    for i in range(9):
        mean = samples[i].mean(axis=0)
        assert mc_entropy_scores(samples)[i] == pytest.approx(-(mean * np.log(mean)).sum())
        std = [np.sqrt(((samples[i, :, c] - mean[c]) ** 2).mean()) for c in range(3)]
        assert mean_std_scores(samples)[i] == pytest.approx(np.mean(std))
        votes = np.bincount(samples[i].argmax(axis=1), minlength=3)
        assert variation_ratios_scores(samples)[i] == pytest.approx(1 - votes.max() / 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchbald_each_greedy_step_maximises_brute_force_joint_mi(seed: int) -> None:
    samples = _samples(8, 6, 3, seed=seed)
    picks, gains = batchbald_select(samples, 4, np.random.default_rng(0))
    for step in range(4):
        before = list(picks[:step])
        values = {j: _mi_brute(samples, [*before, j]) for j in range(8) if j not in before}
        assert values[int(picks[step])] == pytest.approx(max(values.values()), rel=1e-9)
        assert gains[step] == pytest.approx(values[int(picks[step])], rel=1e-9)


def test_batchbald_greedy_pair_is_the_brute_force_argmax_pair_when_greedy_is_optimal() -> None:
    # The first pick of the greedy batch is the BALD argmax; the best pair containing it
    # is the brute-force argmax over all pairs that contain it.
    samples = _samples(7, 5, 3, seed=5)
    picks, _ = batchbald_select(samples, 2, np.random.default_rng(0))
    assert picks[0] == int(np.argmax(bald_scores(samples)))
    pairs = {j: _mi_brute(samples, [int(picks[0]), j]) for j in range(7) if j != picks[0]}
    assert int(picks[1]) == max(pairs, key=pairs.__getitem__)


def test_batchbald_of_one_is_bald() -> None:
    samples = _samples(30, 8, 5, seed=3)
    picks, gains = batchbald_select(samples, 1, np.random.default_rng(0))
    assert picks[0] == int(np.argmax(bald_scores(samples)))
    assert gains[0] == pytest.approx(bald_scores(samples).max())


def test_batchbald_sampled_configurations_approximate_the_exact_joint_mi() -> None:
    samples = _samples(10, 10, 3, seed=4)
    exact, exact_gains = batchbald_select(samples, 4, np.random.default_rng(0))
    # 3^2 * 3 > 9: from the third pick the joint entropy is estimated from samples.
    _, sampled_gains = batchbald_select(samples, 4, np.random.default_rng(0), max_configs=9,
                                        n_configs=20_000)
    brute = [_mi_brute(samples, list(exact[: i + 1])) for i in range(4)]
    np.testing.assert_allclose(exact_gains, brute, rtol=1e-9)
    assert abs(sampled_gains[-1] - exact_gains[-1]) < 0.05 * exact_gains[-1]


@pytest.mark.parametrize("case", range(12))
def test_vectorised_batchbald_equals_the_reference_implementation(case: int) -> None:
    # Random shapes and sharpness; small max_configs so that most cases switch to sampled
    # configurations part-way (the same rng stream draws the same configurations in both;
    # the fast path merges duplicate configurations, the reference does not).
    rng = np.random.default_rng(100 + case)
    n, t, k = int(rng.integers(5, 60)), int(rng.integers(2, 12)), int(rng.integers(2, 6))
    samples = _samples(n, t, k, seed=200 + case, sharp=float(rng.uniform(0.5, 4.0)))
    batch = int(rng.integers(1, min(n, 8) + 1))
    max_configs = int(rng.choice([1, k, k**2, 4096]))
    options = {"max_configs": max_configs, "n_configs": int(rng.integers(5, 300)),
               "chunk_size": int(rng.choice([1, 256]))}
    fast, fast_gains = batchbald_select(samples, batch, np.random.default_rng(case), **options)
    ref, ref_gains = batchbald_select_reference(samples, batch, np.random.default_rng(case),
                                                **options)
    np.testing.assert_array_equal(fast, ref)
    # float64 while exact; the sampled estimate is computed in float32
    np.testing.assert_allclose(fast_gains, ref_gains, rtol=1e-6, atol=1e-9)


def test_batchbald_never_repeats_and_caps_at_n() -> None:
    samples = _samples(5, 4, 2, seed=6)
    picks, _ = batchbald_select(samples, 9, np.random.default_rng(0))
    assert sorted(picks.tolist()) == list(range(5))


def test_mc_dropout_strategies_refuse_learners_without_dropout_saying_how_to_get_it() -> None:
    from activegen.models import LEARNERS

    plain = LEARNERS.build("small-cnn", {})
    logistic = LEARNERS.build("logistic-regression", {})
    for name in ("bald", "batchbald", "mean-std", "variation-ratios", "mc-entropy"):
        strategy = STRATEGIES.build(name, {})
        assert strategy.requires == (MCDropout,)
        for learner, named in ((plain, "small-cnn"), (logistic, "logistic-regression")):
            with pytest.raises(ConfigError, match=rf"'{name}' needs a learner that is "
                                                  rf"MCDropout.*dropout = 0\.5.*'{named}'"):
                check_compatible(strategy, learner)
        check_compatible(strategy, LEARNERS.build("small-cnn", {"dropout": 0.5}))
        check_compatible(strategy, LEARNERS.build("small-cnn", {"ensemble": 3}))


def test_mc_dropout_is_a_capability_of_torch_learners_with_dropout_only() -> None:
    from activegen.models import LEARNERS

    assert has_capability(LEARNERS.get("small-cnn")(3, 0, dropout=0.5), MCDropout)
    assert not has_capability(LEARNERS.get("small-cnn")(3, 0), MCDropout)
    assert not has_capability(LEARNERS.get("logistic-regression")(3, 0), MCDropout)


@pytest.fixture(scope="module")
def fitted_cnn():
    from activegen.data import load_dataset
    from activegen.models import LEARNERS

    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(data.y), 200, replace=False)
    learner = LEARNERS.build("small-cnn", {"dropout": 0.5, "epochs": 3, "schedule": "fixed"},
                             BuildContext(n_classes=10, seed=0))
    X = data.to_float()
    learner.fit(X[idx], data.y[idx])
    return learner, X, data.y


def test_mc_dropout_samples_are_chunk_invariant_and_stochastic(fitted_cnn) -> None:
    learner, X_all, _ = fitted_cnn
    X = X_all[:50]
    a = learner.predict_proba_samples(X, 6, np.random.default_rng(1), chunk_size=50)
    assert a.shape == (50, 6, 10)
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-9)
    assert bald_scores(a).max() > 0  # the passes differ
    again = learner.predict_proba_samples(X, 6, np.random.default_rng(1), chunk_size=50)
    np.testing.assert_array_equal(a, again)
    chunks = list(learner.iter_proba_samples(X, 6, np.random.default_rng(1), chunk_size=7))
    assert max(len(c) for c in chunks) == 7 and sum(len(c) for c in chunks) == 50
    # the masks are one seeded stream, so the chunking does not change the samples
    np.testing.assert_allclose(np.concatenate(chunks), a, rtol=1e-6, atol=1e-9)


def test_dropout_off_keeps_results_and_mc_mean_tracks_prediction(fitted_cnn) -> None:
    from activegen.models import LEARNERS

    learner, X_all, y_all = fitted_cnn
    X, y = X_all[:300], y_all[:300]
    params = {"epochs": 2, "schedule": "fixed"}
    context = BuildContext(n_classes=10, seed=0)
    plain = LEARNERS.build("small-cnn", params, context).fit(X, y)
    off = LEARNERS.build("small-cnn", {**params, "dropout": 0.0}, context).fit(X, y)
    np.testing.assert_array_equal(plain.predict_proba(X[:40]), off.predict_proba(X[:40]))
    mean = learner.predict_proba_samples(X[:100], 200, np.random.default_rng(0)).mean(axis=1)
    agree = (mean.argmax(1) == learner.predict(X[:100])).mean()
    assert agree > 0.9


def test_bald_and_batchbald_query_the_pool(fitted_cnn) -> None:
    learner, X_all, _ = fitted_cnn
    X = X_all[:120]
    queried = np.zeros(120, dtype=bool)
    queried[:20] = True
    for name, params in (("bald", {}), ("batchbald", {"subsample": 60}),
                         ("mean-std", {}), ("variation-ratios", {}), ("mc-entropy", {})):
        state = QueryState(X, queried, np.arange(20), learner, 10, np.random.default_rng(0))
        q = STRATEGIES.build(name, {"n_samples": 5, **params}).query(state, 6)
        assert len(set(q.indices.tolist())) == 6 and (q.indices >= 20).all()


@pytest.fixture(scope="module")
def fitted_ensemble():
    from activegen.data import load_dataset
    from activegen.models import LEARNERS

    data = load_dataset("digits")
    idx = np.random.default_rng(1).choice(len(data.y), 150, replace=False)
    learner = LEARNERS.build("small-cnn", {"ensemble": 3, "epochs": 2, "schedule": "fixed"},
                             BuildContext(n_classes=10, seed=0))
    X = data.to_float()
    learner.fit(X[idx], data.y[idx])
    return learner, X


def test_bald_on_an_ensemble_is_the_mutual_information_of_its_members(fitted_ensemble) -> None:
    learner, X_all = fitted_ensemble
    X = X_all[:40]
    assert has_capability(learner, MCDropout) and len(learner.members) == 3
    # the members' own softmax outputs, one network at a time through torch
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(X)
        members = np.stack([torch.softmax(m(x)[0].double(), dim=1).numpy()
                            for m in learner.members], axis=1)
    assert not np.allclose(members[:, 0], members[:, 1])  # independently seeded members
    samples = learner.predict_proba_samples(X, 20, np.random.default_rng(0), chunk_size=7)
    assert samples.shape == (40, 3, 10)  # the posterior has the members' 3 samples
    np.testing.assert_allclose(samples, members, rtol=1e-5, atol=1e-7)
    expected = [_mi_brute(members, [i]) for i in range(40)]
    np.testing.assert_allclose(bald_scores(samples), expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(learner.predict_proba(X), members.mean(axis=1), rtol=1e-5,
                               atol=1e-7)
    queried = np.zeros(len(X), dtype=bool)
    state = QueryState(X, queried, np.arange(0), learner, 10, np.random.default_rng(0))
    q = STRATEGIES.build("bald", {}).query(state, 5)
    top = np.argsort(-np.asarray(expected))[:5]
    assert set(q.indices.tolist()) == set(top.tolist())


def test_ensemble_members_are_seeded_and_the_option_is_checked() -> None:
    from activegen.models import LEARNERS

    cls = LEARNERS.get("small-cnn")
    a = cls(3, 4, ensemble=4).member_seeds()
    assert a == cls(3, 4, ensemble=4).member_seeds() and len(set(a)) == 4
    assert cls(3, 4).member_seeds() == [4]
    with pytest.raises(ValueError, match="ensemble"):
        cls(3, 0, ensemble=0)
    with pytest.raises(ValueError, match="dropout = 0"):
        cls(3, 0, ensemble=3, dropout=0.5)
    check_compatible(STRATEGIES.build("batchbald", {}), cls(3, 0, ensemble=5))
    with pytest.raises(ConfigError, match="MCDropout"):
        check_compatible(STRATEGIES.build("bald", {}), cls(3, 0, ensemble=1))


def test_an_ensemble_runs_bald_end_to_end_and_a_plain_cnn_is_refused(tmp_path) -> None:
    import pandas as pd
    from tests._experiments import small_config

    from activegen.experiments.runner import run_experiment

    learner = {"name": "small-cnn", "epochs": 1, "schedule": "fixed", "ensemble": 2}
    config = small_config(seeds=[0], learner=learner, strategies=[{"name": "bald"}],
                          loop={"initial": 20, "batch": 10, "budget": 40})
    rows = pd.read_csv(run_experiment(config, tmp_path / "out", progress=False))
    assert rows["n_labels"].tolist() == [20, 30, 40]
    with pytest.raises(ConfigError, match="bald"):
        small_config(seeds=[0], learner={**learner, "ensemble": 1},
                     strategies=[{"name": "bald"}],
                     loop={"initial": 20, "batch": 10, "budget": 40})
