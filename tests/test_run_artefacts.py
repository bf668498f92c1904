"""A finished run's manifest names the trained artefacts its strategy used (a generator's
cache key and the machine that trained it), and the report says when a run used one trained
on another kind of machine: a shared or copied generator cache gives a run float results
that neither machine computes alone from scratch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from _experiments import copy_output
from activegen.experiments.config import parse_config
from activegen.experiments.executors import FinishedRun
from activegen.experiments.machine import RunProvenance, machine_record, read_provenance
from activegen.experiments.output import store_finished
from activegen.experiments.report import make_report
from activegen.experiments.results import is_finished_run, manifest_path
from activegen.experiments.runner import run_experiment

OTHER = {"cpu": "Another CPU", "cpu_capability": "OTHER_ISA"}


def _config():  # type: ignore[no-untyped-def]
    return parse_config({
        "name": "artefacts", "seeds": [0],
        "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
        "loop": {"initial": 4, "batch": 2, "budget": 8},
        "oracle": {"name": "expert", "threshold": 0.8},
        "generator": {"epochs": 1, "width": 8, "latent_dim": 8},
        "synthesis": {"steps": 2},
        "strategies": [
            {"name": "gaal"},
            # its GAAL and its random rounds: one generator, named once
            {"name": "mixed", "every": 1},
            {"name": "random"},
        ],
    })


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artefacts") / "out"
    run_experiment(_config(), out, progress=False)
    return out


def _set_artefacts(run_csv: Path, artefacts: object) -> None:
    manifest = json.loads(manifest_path(run_csv).read_text())
    manifest["artefacts"] = artefacts
    manifest_path(run_csv).write_text(json.dumps(manifest))


def test_a_generator_run_names_its_generator_and_trainer(finished: Path) -> None:
    (entry,) = [p for p in (finished / "cache" / "generators").iterdir() if p.is_dir()]
    trainer = json.loads((entry / "settings.json").read_text())["trained_on"]
    for run in ("gaal__seed0", "mixed__seed0"):
        provenance = read_provenance(finished / "runs" / f"{run}.csv")
        assert provenance.artefacts == ({"kind": "generator", "key": entry.name,
                                         "trained_on": trainer},)
        # trained inside the run, under its thread limits: the same kind as the run's machine
        assert provenance.trained_elsewhere() == []
    assert read_provenance(finished / "runs" / "random__seed0.csv").artefacts == ()
    assert "artefacts" not in json.loads(
        manifest_path(finished / "runs" / "random__seed0.csv").read_text())


def test_one_machine_throughout_says_nothing_of_artefacts(finished: Path,
                                                          tmp_path: Path) -> None:
    out = copy_output(finished, tmp_path)
    report = make_report(out / "results.csv").read_text()
    assert "trained on another kind of machine" not in report
    assert pd.read_csv(out / "machines.csv")["trained_elsewhere"].isna().all()


def test_a_generator_trained_elsewhere_is_flagged(finished: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    out = copy_output(finished, tmp_path)
    run = out / "runs" / "gaal__seed0.csv"
    (artefact,) = read_provenance(run).artefacts
    _set_artefacts(run, [{**artefact, "trained_on": {**artefact["trained_on"], **OTHER}}])
    assert is_finished_run(run)  # the rows are still trusted
    with caplog.at_level(logging.WARNING, logger="activegen"):
        report = make_report(out / "results.csv").read_text()
    assert "**1 run(s) used an artefact trained on another kind of machine**" in report
    assert "gaal__seed0" in report.split("another kind of machine**", 1)[1].split("\n")[0]
    assert "trained on another kind of machine" in caplog.text
    table = pd.read_csv(out / "machines.csv").set_index("run")
    cell = table.loc["gaal__seed0", "trained_elsewhere"]
    assert cell.startswith(f"generator {artefact['key']}: ") and "OTHER_ISA" in cell
    assert pd.isna(table.loc["mixed__seed0", "trained_elsewhere"])


@pytest.mark.parametrize("bad", ["generator", {"kind": "generator"}, [{"kind": 1, "key": "k"}],
                                 [{"kind": "generator"}], [3]])
def test_an_unusable_artefacts_field_is_read_as_none(finished: Path, tmp_path: Path,
                                                     bad: object) -> None:
    out = copy_output(finished, tmp_path)
    run = out / "runs" / "gaal__seed0.csv"
    _set_artefacts(run, bad)
    assert read_provenance(run).artefacts == ()
    assert "trained on another kind of machine" not in make_report(out / "results.csv").read_text()


def test_a_trainer_that_is_not_a_machine_record_is_dropped(finished: Path,
                                                           tmp_path: Path) -> None:
    out = copy_output(finished, tmp_path)
    run = out / "runs" / "gaal__seed0.csv"
    _set_artefacts(run, [{"kind": "generator", "key": "k", "trained_on": {"cpu": 3}}])
    assert read_provenance(run).artefacts == ({"kind": "generator", "key": "k"},)
    assert read_provenance(run).trained_elsewhere() == []


def test_a_run_without_a_machine_record_flags_no_artefact() -> None:
    trainer = {**machine_record(), **OTHER}
    assert RunProvenance(None, (), ({"kind": "generator", "key": "k",
                                     "trained_on": trainer},)).trained_elsewhere() == []


def test_the_driver_writes_a_remote_runs_artefacts(finished: Path, tmp_path: Path) -> None:
    """A Ray worker without the shared folder hands its run's artefacts back with its rows."""
    source = finished / "runs" / "gaal__seed0.csv"
    worker = {**machine_record(), "cpu": "Remote CPU", "cpu_capability": "REMOTE_ISA"}
    artefact = {"kind": "generator", "key": "abc", "trained_on": {**worker, **OTHER}}
    out = tmp_path / "driver"
    store_finished(out, FinishedRun("gaal__seed0", source.read_text(), {}, worker, (),
                                    (artefact,)))
    run = out / "runs" / "gaal__seed0.csv"
    assert is_finished_run(run)
    provenance = read_provenance(run)
    assert provenance.machine == worker and provenance.artefacts == (artefact,)
    (elsewhere,) = provenance.trained_elsewhere()
    assert elsewhere.startswith("generator abc: ") and "OTHER_ISA" in elsewhere
