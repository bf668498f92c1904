"""Every finished run records the machine that computed it, and the report says when an
experiment's runs come from more than one kind of machine (float kernels change results)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from _experiments import small_config
from activegen.experiments.executors import FinishedRun
from activegen.experiments.machine import NOT_RECORDED, RESULT_FIELDS, machine_record
from activegen.experiments.output import store_finished
from activegen.experiments.report import make_report
from activegen.experiments.results import is_finished_run, manifest_path, run_machine
from activegen.experiments.runner import run_experiment


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("machines") / "out"
    run_experiment(small_config(), out, progress=False)
    return out


def _copy(finished: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


def _set_machine(run_csv: Path, machine: object) -> None:
    manifest = json.loads(manifest_path(run_csv).read_text())
    if machine is None:
        manifest.pop("machine")
    else:
        manifest["machine"] = machine
    manifest_path(run_csv).write_text(json.dumps(manifest))


def test_every_manifest_names_this_machine(finished: Path) -> None:
    runs = sorted((finished / "runs").glob("*.csv"))
    assert len(runs) == 4
    here = machine_record("cpu")
    assert set(RESULT_FIELDS) <= set(here)
    assert here["cpu_capability"] and here["torch"] and here["blas"]
    for run in runs:
        assert run_machine(run) == here


def test_one_kind_of_machine_is_said_once(finished: Path, tmp_path: Path) -> None:
    out = _copy(finished, tmp_path)
    report = make_report(out / "results.csv").read_text()
    assert "## Machines" in report
    assert "All 4 runs were computed on one kind of machine" in report
    assert "record no machine" not in report
    assert machine_record()["cpu_capability"] in report
    table = pd.read_csv(out / "machines.csv")
    assert sorted(table["run"]) == sorted(p.stem for p in (out / "runs").glob("*.csv"))
    assert set(table["strategy"]) == {"random", "margin"}


def test_runs_from_two_kinds_of_machine_are_flagged(finished: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    out = _copy(finished, tmp_path)
    other = {**machine_record(), "cpu": "Another CPU", "cpu_capability": "AVX512"}
    for run in ("margin__seed0", "margin__seed1"):
        _set_machine(out / "runs" / f"{run}.csv", other)
        assert is_finished_run(out / "runs" / f"{run}.csv")  # the rows are still trusted
    with caplog.at_level(logging.WARNING, logger="activegen"):
        report = make_report(out / "results.csv").read_text()
    assert "computed on 2 kinds of machine" in report
    assert "kinds of machine" in caplog.text
    section = report.split("## Machines", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| M")]
    assert len(rows) == 2
    assert any("| 2 | random |" in r and "AVX512" not in r for r in rows)
    assert any("| 2 | margin | Another CPU | AVX512 |" in r for r in rows)
    assert "AVX512" in section and "Another CPU" in section
    table = pd.read_csv(out / "machines.csv").set_index("run")
    assert table.loc["margin__seed0", "cpu_capability"] == "AVX512"
    assert table.loc["random__seed0", "cpu_capability"] == machine_record()["cpu_capability"]


@pytest.mark.parametrize("bad", [None, "AMD", {"cpu": 3}, ["cpu"]])
def test_a_manifest_without_a_usable_record_is_not_recorded(finished: Path, tmp_path: Path,
                                                            bad: object) -> None:
    """Runs written before machines were recorded (or with a record that is not a table of
    strings) are still finished runs; the report says their machine is not known."""
    out = _copy(finished, tmp_path)
    for run in (out / "runs").glob("*.csv"):
        _set_machine(run, bad)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.csv")}
    run_experiment(small_config(), out, progress=False)  # nothing is run again
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.csv")} == before
    assert all(run_machine(p) is None for p in (out / "runs").glob("*.csv"))
    report = make_report(out / "results.csv").read_text()
    assert "4 run(s) record no machine" in report and "kinds of machine" not in report
    table = pd.read_csv(out / "machines.csv")
    assert (table[list(RESULT_FIELDS)] == NOT_RECORDED).all(axis=None)


def test_the_driver_records_the_workers_machine(finished: Path, tmp_path: Path) -> None:
    """A remote worker that could not write the output folder hands its machine back with
    its rows: the manifest the driver writes names the worker's machine, not the driver's."""
    source = finished / "runs" / "random__seed0.csv"
    worker = {**machine_record(), "cpu": "Remote CPU", "cpu_capability": "AVX512"}
    out = tmp_path / "driver"
    store_finished(out, FinishedRun("random__seed0", source.read_text(), {}, worker))
    assert is_finished_run(out / "runs" / "random__seed0.csv")
    assert run_machine(out / "runs" / "random__seed0.csv") == worker


def test_a_results_file_outside_an_output_folder_has_no_machines_section(
        finished: Path, tmp_path: Path) -> None:
    """A copied table (e.g. ``docs/…_results.csv.gz``) is not described by the ``runs/`` that
    happen to sit beside it."""
    out = _copy(finished, tmp_path)
    copy = out / "copy_results.csv"
    copy.write_bytes((out / "results.csv").read_bytes())
    assert "## Machines" not in make_report(copy).read_text()


def test_old_runs_beside_new_ones_are_named_not_counted_as_another_machine(
        finished: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder begun before machines were recorded and finished after: the unknown runs
    are said to be unknown, not taken for a second kind of machine."""
    out = _copy(finished, tmp_path)
    _set_machine(out / "runs" / "random__seed0.csv", None)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        report = make_report(out / "results.csv").read_text()
    assert "3 of the 4 runs were computed on one kind of machine" in report
    assert "1 run(s) record no machine" in report
    assert "kinds of machine" not in report and "kinds of machine" not in caplog.text
