"""The labeling app's "you can stop here" notice: a session's ``[stopping]`` criterion."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from activegen.data.dataset import Dataset
from activegen.errors import ConfigError
from activegen.server.config import LabelConfig, parse_label_config
from activegen.server.web.app import create_app
from activegen.stopping import cohens_kappa
from label_support import api_client, digits_config, make_session


def _config(stopping: dict[str, Any] | None) -> LabelConfig:
    data: dict[str, Any] = {"name": "stop", "seed": 3,
                            "data": {"dataset": "digits", "test_fraction": 0.3},
                            "strategy": {"name": "uncertainty"},
                            "loop": {"initial": 4, "batch": 4, "budget": 24},
                            "labeling": {"background": False}}
    if stopping is not None:
        data["stopping"] = stopping
    return parse_label_config(data)


def _answer_round(client: TestClient, pool: Dataset) -> None:
    queries = client.post("/api/batch", json={"labeler": "me"}).json()["queries"]
    assert queries
    for q in queries:
        r = client.post("/api/label", json={"query_id": q["id"],
                                            "label": int(pool.y[q["pool_index"]]),
                                            "labeler": "me"})
        assert r.status_code == 200, r.text


BUDGET_12 = {"criteria": {"budget": {"budget": 12}}, "stop_on": "budget"}


def test_budget_criterion_fires_at_the_round_whose_fit_has_its_labels(tmp_path: Path) -> None:
    # batch 4: the fit of round r is on 4 * r labels, so 12 labels -> round 3
    session, pool = make_session(tmp_path / "s.sqlite", _config(BUDGET_12))
    client = api_client(create_app(session))
    seen = []
    for _ in range(4):
        state = client.get("/api/state").json()
        seen.append((state["round"], state["stopping"]["fired"]))
        _answer_round(client, pool)
    state = client.get("/api/state").json()
    seen.append((state["round"], state["stopping"]["fired"]))
    assert seen == [(0, False), (1, False), (2, False), (3, True), (4, True)]
    assert state["stopping"] == {"criterion": "budget", "fired": True, "round": 3,
                                 "n_labels": 12}
    session.close()
    # reopened, the session keeps its recorded rounds and says the same
    again, _ = make_session(tmp_path / "s.sqlite", _config(BUDGET_12))
    assert api_client(create_app(again)).get("/api/state").json()["stopping"] == \
        state["stopping"]
    again.close()


def test_stabilizing_predictions_fires_where_kappa_of_the_fits_says(tmp_path: Path) -> None:
    stopping = {"criteria": {"stabilizing-predictions": {"threshold": 0.8, "window": 1}},
                "stop_on": "stabilizing-predictions", "stop_set": 150}
    session, pool = make_session(tmp_path / "s.sqlite", _config(stopping))
    client = api_client(create_app(session))
    X_stop = session.X_pool[session.stopping.stop_idx]
    predictions, fired_states = {}, {}
    for _ in range(5):
        _answer_round(client, pool)
        state = client.get("/api/state").json()
        predictions[state["round"]] = session.learner.predict(X_stop)
        fired_states[state["round"]] = state["stopping"]
    # brute force: the first round whose predictions agree with the previous fit's, κ >= 0.8
    rounds = sorted(predictions)
    expected = next((r for prev, r in itertools.pairwise(rounds)
                     if cohens_kappa(predictions[prev], predictions[r]) >= 0.8), None)
    assert expected is not None, "the hand-made session must fire"
    for r, st in fired_states.items():
        assert st["fired"] == (r >= expected)
        assert st["round"] == (expected if r >= expected else None)
    assert len(np.unique(session.stopping.stop_idx)) == 150
    session.close()


def test_without_stopping_nothing_changes_and_bad_criteria_are_refused(tmp_path: Path) -> None:
    plain = _config(None)
    assert plain.fingerprint() == digits_config(name="stop").fingerprint()
    assert plain.fingerprint() == _config(BUDGET_12).fingerprint()
    session, _ = make_session(tmp_path / "s.sqlite", plain)
    assert "stopping" not in api_client(create_app(session)).get("/api/state").json()
    page = api_client(create_app(session)).get("/")
    assert "You can stop here" in page.text and 'id="stopnotice"' in page.text
    session.close()
    with pytest.raises(ConfigError, match=r"stopping.criteria: unknown stopping criterion"):
        _config({"criteria": {"nope": {}}})
    with pytest.raises(ConfigError, match=r"stopping.criteria: stopping criterion 'budget'"):
        _config({"criteria": {"budget": {"budget": 0}}})
    with pytest.raises(ConfigError, match=r"stopping.bogus: unknown key"):
        _config({"criteria": {"budget": {"budget": 3}}, "bogus": 1})
