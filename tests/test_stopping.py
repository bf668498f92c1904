"""Stopping criteria fire exactly at the round a hand-made sequence says."""

from __future__ import annotations

import numpy as np
import pytest

from activegen.errors import ConfigError
from activegen.stopping import (
    Budget,
    ClassificationChange,
    MaxUncertainty,
    Observation,
    OverallUncertainty,
    StabilizingPredictions,
    build_criterion,
    cohens_kappa,
)


def _run(criterion, predictions, proba=None, labels=None) -> list[bool]:
    fired = []
    for r, pred in enumerate(predictions):
        obs = Observation(r, labels[r] if labels else 10 * (r + 1), np.asarray(pred),
                          None if proba is None else np.asarray(proba[r], dtype=float))
        fired.append(criterion.update(obs))
    return fired


def test_cohens_kappa_by_hand() -> None:
    a = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2])
    b = np.array([0, 1, 1, 1, 2, 2, 2, 0, 1, 0])
    p_o = 7 / 10
    p_e = (3 / 10) * (3 / 10) + (4 / 10) * (4 / 10) + (3 / 10) * (3 / 10)
    assert cohens_kappa(a, b) == pytest.approx((p_o - p_e) / (1 - p_e))
    assert cohens_kappa(a, a) == 1.0
    assert cohens_kappa(np.zeros(4), np.zeros(4)) == 1.0


def test_stabilizing_predictions_fires_after_window_agreeing_rounds() -> None:
    base = np.arange(200) % 4
    changed = base.copy()
    changed[:10] = (changed[:10] + 1) % 4  # kappa well below 0.99
    one_off = base.copy()
    one_off[0] = (one_off[0] + 1) % 4  # 199/200 agree: kappa ≈ 0.993 ≥ 0.99
    assert cohens_kappa(base, one_off) >= 0.99
    # rounds: 0 base, 1 changed (low), 2 base (low), 3 base (1.0), 4 one_off (≥.99), 5 one_off
    seq = [base, changed, base, base, one_off, one_off]
    crit = StabilizingPredictions(threshold=0.99, window=3)
    assert _run(crit, seq) == [False, False, False, False, False, True]
    assert crit.fired_round == 5
    # a disagreement resets the streak: kappas 1, low, 1, low, 1, 1 (two agreeing checks by
    # round 3, but not two consecutive ones until round 6)
    crit = StabilizingPredictions(threshold=0.99, window=2)
    seq = [base, base, changed, changed, base, base, base]
    assert _run(crit, seq) == [False, False, False, False, False, False, True]
    assert crit.fired_round == 6


def test_classification_change_fires_when_no_prediction_changes() -> None:
    a, b = np.array([0, 1, 2, 0]), np.array([0, 1, 1, 0])
    crit = ClassificationChange()
    assert _run(crit, [a, b, a, a, b]) == [False, False, False, True, False]
    assert crit.fired_round == 3
    loose = ClassificationChange(threshold=0.25)  # one of four may change
    assert _run(loose, [a, b, a]) == [False, True, True]


def test_uncertainty_criteria_fire_at_their_thresholds() -> None:
    sure, unsure = [0.99, 0.005, 0.005], [0.4, 0.3, 0.3]
    proba = [[unsure, unsure], [sure, unsure], [sure, sure], [sure, sure]]
    h_sure = -sum(p * np.log(p) for p in sure)
    h_unsure = -sum(p * np.log(p) for p in unsure)
    preds = [np.zeros(2, dtype=int)] * 4
    crit = MaxUncertainty(threshold=h_sure + 1e-9)
    assert _run(crit, preds, proba) == [False, False, True, True]
    assert crit.fired_round == 2
    crit = OverallUncertainty(threshold=(h_sure + h_unsure) / 2 + 1e-9)
    assert _run(crit, preds, proba) == [False, True, True, True]
    assert crit.fired_round == 1


def test_budget_fires_at_the_budget_and_records_labels() -> None:
    crit = Budget(35)
    assert _run(crit, [[0]] * 5, labels=[10, 20, 30, 40, 50]) == [False, False, False, True,
                                                                   True]
    assert (crit.fired_round, crit.fired_labels) == (3, 40)


def test_build_criterion_refuses_bad_names_and_params() -> None:
    with pytest.raises(ConfigError, match="unknown stopping criterion 'nope'"):
        build_criterion("nope")
    with pytest.raises(ConfigError, match=r"stabilizing-predictions.*window"):
        build_criterion("stabilizing-predictions", {"window": 0})
    with pytest.raises(ConfigError, match="budget"):
        build_criterion("budget", {"bugdet": 3})
    with pytest.raises(ValueError, match="probabilities"):
        MaxUncertainty().update(Observation(0, 1, np.zeros(2)))
