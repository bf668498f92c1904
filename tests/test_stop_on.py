"""`[stopping] stop_on`: a run ends at the round its criterion fires; resume gives its rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests._experiments import results_without_timings, small_config

from activegen.errors import ConfigError
from activegen.experiments.runner import prepare_output, run_experiment, run_one, run_specs

CRITERIA = {"stabilizing-predictions": {"window": 2, "threshold": 0.9},
            "classification-change": {"threshold": 0.5}}
LOOP = {"initial": 20, "batch": 4, "budget": 100}


def _config(stop_on: str | None):  # type: ignore[no-untyped-def]
    stopping = {"criteria": CRITERIA, "stop_set": 200}
    if stop_on is not None:
        stopping["stop_on"] = stop_on
    return small_config(seeds=[0], strategies=[{"name": "margin"}], loop=LOOP,
                        stopping=stopping)


def _verdict(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(next((out / "stopping").glob("*.json")).read_text())


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("full")
    run_experiment(_config(None), out, progress=False)
    return results_without_timings(out), _verdict(out)


def test_stop_on_is_part_of_the_fingerprint() -> None:
    assert _config(None).fingerprint() == small_config(
        seeds=[0], strategies=[{"name": "margin"}], loop=LOOP,
        stopping={"criteria": CRITERIA, "stop_set": 200, "stop_on": None}).fingerprint()
    assert _config("stabilizing-predictions").fingerprint() != _config(None).fingerprint()


@pytest.mark.parametrize("criterion", ["stabilizing-predictions", "classification-change"])
def test_stop_on_ends_at_the_recorded_round_with_the_full_runs_prefix(
        tmp_path: Path, full: tuple[pd.DataFrame, dict], criterion: str) -> None:  # type: ignore[type-arg]
    rows, verdict = full
    fired = verdict["criteria"][criterion]
    assert fired is not None and 0 < fired["round"] < rows["round"].max()
    out = tmp_path / "out"
    run_experiment(_config(criterion), out, progress=False)
    stopped = results_without_timings(out)
    assert stopped["round"].max() == fired["round"]
    assert stopped["n_labels"].max() == fired["n_labels"] < LOOP["budget"]
    prefix = rows[rows["round"] <= fired["round"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(stopped.reset_index(drop=True), prefix)
    mine = _verdict(out)
    assert mine["stop_on"] == criterion and mine["stopped_round"] == fired["round"]
    assert mine["criteria"][criterion]["round"] == fired["round"]


def test_stop_on_resumes_after_a_crash_and_after_a_finished_checkpoint(
        tmp_path: Path, full: tuple[pd.DataFrame, dict]) -> None:  # type: ignore[type-arg]
    criterion = "stabilizing-predictions"
    fired = full[1]["criteria"][criterion]["round"]
    reference = tmp_path / "ref"
    run_experiment(_config(criterion), reference, progress=False)
    expected = results_without_timings(reference)

    config, out = _config(criterion), tmp_path / "out"
    prepare_output(config, out)
    (spec,) = run_specs(config)

    def crash(record) -> None:  # type: ignore[no-untyped-def]
        if record.round == fired - 1:  # a kill just before the criterion's round
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(config, spec, out, on_round=crash)
    assert not (out / "runs" / f"{spec.run_id}.csv").exists()
    run_experiment(config, out, progress=False)
    pd.testing.assert_frame_equal(results_without_timings(out), expected)

    # the checkpoint says finished: without the run's CSV it gives the same rows, no more
    (out / "runs" / f"{spec.run_id}.csv").unlink()
    run_experiment(config, out, progress=False)
    pd.testing.assert_frame_equal(results_without_timings(out), expected)


def test_stop_on_naming_an_unrecorded_criterion_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stopping.*stop_on.*'max-uncertainty' is not one of"):
        run_experiment(_config("max-uncertainty"), tmp_path / "a", progress=False)
    assert not (tmp_path / "a" / "runs").exists()
