"""Every finished run records the machine that computed it, and the report says when an
experiment's runs come from more than one kind of machine (float kernels change results)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from _experiments import copy_output, small_config
from activegen.experiments.executors import FinishedRun
from activegen.experiments.machine import (
    NOT_RECORDED,
    RESULT_FIELDS,
    THREADS,
    machine_record,
    run_machine,
    run_resumed_from,
)
from activegen.experiments.output import store_finished
from activegen.experiments.report import make_report
from activegen.experiments.results import is_finished_run, manifest_path
from activegen.experiments.runner import run_experiment


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("machines") / "out"
    run_experiment(small_config(), out, progress=False)
    return out




def _set_machine(run_csv: Path, machine: object) -> None:
    manifest = json.loads(manifest_path(run_csv).read_text())
    if machine is None:
        manifest.pop("machine")
    else:
        manifest["machine"] = machine
    manifest_path(run_csv).write_text(json.dumps(manifest))


def _as_a_run_records() -> dict[str, str]:
    """This machine's record as a run makes it: inside the run's thread limits (the config's
    ``execution.threads``, 1 here), whatever this test process's own thread count is."""
    from activegen.experiments.executors import limited_threads

    with limited_threads(1):
        return machine_record("cpu")


def test_every_manifest_names_this_machine(finished: Path) -> None:
    runs = sorted((finished / "runs").glob("*.csv"))
    assert len(runs) == 4
    here = _as_a_run_records()
    assert set(RESULT_FIELDS) <= set(here)
    assert here["cpu_capability"] and here["torch"] and here["blas"]
    assert here[THREADS] == "1"
    for run in runs:
        assert run_machine(run) == here


def test_one_kind_of_machine_is_said_once(finished: Path, tmp_path: Path) -> None:
    out = copy_output(finished, tmp_path)
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
    out = copy_output(finished, tmp_path)
    other = {**machine_record(), "cpu": "Another CPU", "cpu_capability": "OTHER_ISA"}
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
    assert any("| 2 | random |" in r and "OTHER_ISA" not in r for r in rows)
    assert any("| 2 | margin | Another CPU | OTHER_ISA |" in r for r in rows)
    assert "OTHER_ISA" in section and "Another CPU" in section
    table = pd.read_csv(out / "machines.csv").set_index("run")
    assert table.loc["margin__seed0", "cpu_capability"] == "OTHER_ISA"
    assert table.loc["random__seed0", "cpu_capability"] == machine_record()["cpu_capability"]


@pytest.mark.parametrize("bad", [None, "AMD", {"cpu": 3}, ["cpu"]])
def test_a_manifest_without_a_usable_record_is_not_recorded(finished: Path, tmp_path: Path,
                                                            bad: object) -> None:
    """Runs written before machines were recorded (or with a record that is not a table of
    strings) are still finished runs; the report says their machine is not known."""
    out = copy_output(finished, tmp_path)
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
    worker = {**machine_record(), "cpu": "Remote CPU", "cpu_capability": "OTHER_ISA"}
    out = tmp_path / "driver"
    store_finished(out, FinishedRun("random__seed0", source.read_text(), {}, worker))
    assert is_finished_run(out / "runs" / "random__seed0.csv")
    assert run_machine(out / "runs" / "random__seed0.csv") == worker
    assert run_resumed_from(out / "runs" / "random__seed0.csv") == []


def test_the_driver_records_a_remote_runs_earlier_machines(finished: Path,
                                                           tmp_path: Path) -> None:
    """A remote worker's run that was resumed there after another kind of machine began it:
    the manifest the driver writes names both."""
    source = finished / "runs" / "random__seed0.csv"
    worker = {**machine_record(), "cpu": "Remote CPU", "cpu_capability": "OTHER_ISA"}
    earlier = {**machine_record(), "cpu": "Earlier CPU", "cpu_capability": "FIRST_ISA"}
    out = tmp_path / "driver"
    store_finished(out, FinishedRun("random__seed0", source.read_text(), {}, worker,
                                    (earlier,)))
    run = out / "runs" / "random__seed0.csv"
    assert is_finished_run(run)
    assert run_machine(run) == worker and run_resumed_from(run) == [earlier]


def test_a_results_file_outside_an_output_folder_has_no_machines_section(
        finished: Path, tmp_path: Path) -> None:
    """A copied table (e.g. ``docs/…_results.csv.gz``) is not described by the ``runs/`` that
    happen to sit beside it."""
    out = copy_output(finished, tmp_path)
    copy = out / "copy_results.csv"
    copy.write_bytes((out / "results.csv").read_bytes())
    assert "## Machines" not in make_report(copy).read_text()


def test_old_runs_beside_new_ones_are_named_not_counted_as_another_machine(
        finished: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder begun before machines were recorded and finished after: the unknown runs
    are said to be unknown, not taken for a second kind of machine."""
    out = copy_output(finished, tmp_path)
    _set_machine(out / "runs" / "random__seed0.csv", None)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        report = make_report(out / "results.csv").read_text()
    assert "3 of the 4 runs were computed on one kind of machine" in report
    assert "1 run(s) record no machine" in report
    assert "kinds of machine" not in report and "kinds of machine" not in caplog.text


def _resumed_on_another_machine(out: Path, monkeypatch: pytest.MonkeyPatch,
                                crash_after: int) -> dict[str, str]:
    """Start ``random__seed0`` on a pretend machine, kill it after round ``crash_after``,
    then finish the experiment on this one; returns the pretend machine's record."""
    from activegen.experiments import one_run
    from activegen.experiments.output import prepare_output
    from activegen.experiments.runner import run_specs

    config = small_config()
    prepare_output(config, out)
    spec = next(s for s in run_specs(config) if s.run_id == "random__seed0")
    first = {**machine_record(), "cpu": "First CPU", "cpu_capability": "FIRST_ISA"}
    monkeypatch.setattr(one_run, "machine_record", lambda device="cpu": dict(first))

    def crash(record) -> None:  # type: ignore[no-untyped-def]
        if record.round == crash_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        one_run.run_one(config, spec, out, on_round=crash)
    monkeypatch.undo()
    run_experiment(config, out, progress=False)
    return first


def test_a_run_resumed_on_another_machine_names_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Rounds computed before a resume keep the machine that computed them: the manifest
    names the finisher and the other kind, and the report says which runs are mixed."""
    out = tmp_path / "out"
    first = _resumed_on_another_machine(out, monkeypatch, crash_after=3)
    resumed = out / "runs" / "random__seed0.csv"
    assert run_machine(resumed) == _as_a_run_records()
    assert run_resumed_from(resumed) == [first]
    for other in sorted((out / "runs").glob("*.csv")):
        if other != resumed:
            assert run_resumed_from(other) == []
    with caplog.at_level(logging.WARNING, logger="activegen"):
        report = make_report(out / "results.csv").read_text()
    assert "**1 run(s) were resumed on another kind of machine**" in report
    assert "random__seed0" in report.split("## Machines", 1)[1]
    assert "were computed on one kind of machine" not in report
    assert "resumed on another kind of machine" in caplog.text
    table = pd.read_csv(out / "machines.csv", keep_default_na=False).set_index("run")
    assert "First CPU" in table.loc["random__seed0", "resumed_from"]
    assert "FIRST_ISA" in table.loc["random__seed0", "resumed_from"]
    assert (table.drop(index="random__seed0")["resumed_from"] == "").all()


def test_a_run_begun_afresh_forgets_the_machine_that_left_no_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed before its first checkpoint starts again from its first round: the
    machine that began it computed nothing the run keeps, so it is not named."""
    out = tmp_path / "out"
    _resumed_on_another_machine(out, monkeypatch, crash_after=3)
    (out / "runs" / "random__seed0.csv").unlink()  # run it again, from the start
    for leftover in (out / "checkpoints").glob("random__seed0.npz"):
        leftover.unlink()
    run_experiment(small_config(), out, progress=False)
    assert run_resumed_from(out / "runs" / "random__seed0.csv") == []


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"cpu": "x"}'])
def test_a_damaged_machine_log_is_named_and_read_as_an_unknown_machine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    from activegen.experiments.machine import UNKNOWN_MACHINE, log_machine, machine_log_path

    checkpoint = tmp_path / "checkpoints" / "random__seed0.npz"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"a checkpoint")
    machine_log_path(checkpoint).write_text(damage)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        history = log_machine(checkpoint, machine_record())
    assert "random__seed0.machines.json: not a machine log" in caplog.text
    assert history == [UNKNOWN_MACHINE, machine_record()]
    assert json.loads(machine_log_path(checkpoint).read_text()) == history


def test_one_kind_of_machine_resuming_itself_is_logged_once(tmp_path: Path) -> None:
    from activegen.experiments.machine import log_machine

    checkpoint = tmp_path / "run.npz"
    assert log_machine(checkpoint, machine_record()) == [machine_record()]
    checkpoint.write_bytes(b"a checkpoint")
    other = {**machine_record(), "cpu_capability": "OTHER_ISA"}
    assert log_machine(checkpoint, machine_record()) == [machine_record()]
    assert log_machine(checkpoint, other) == [machine_record(), other]
    assert log_machine(checkpoint, machine_record()) == [machine_record(), other,
                                                         machine_record()]


def test_runs_with_different_thread_counts_are_flagged(
        finished: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``execution.threads`` is not part of a folder's fingerprint, so runs of one folder can
    use different counts, which change float results: the report says so. A run recorded
    before thread counts were is not counted as another count."""
    out = copy_output(finished, tmp_path)
    here = _as_a_run_records()
    _set_machine(out / "runs" / "margin__seed0.csv", {**here, THREADS: "4"})
    _set_machine(out / "runs" / "margin__seed1.csv",
                 {k: v for k, v in here.items() if k != THREADS})
    with caplog.at_level(logging.WARNING, logger="activegen"):
        report = make_report(out / "results.csv").read_text()
    assert "**The runs used 2 thread counts (1, 4).**" in report
    assert "thread counts" in caplog.text
    assert "All 4 runs were computed on one kind of machine" in report  # same hardware
    table = pd.read_csv(out / "machines.csv", dtype=str).set_index("run")
    assert table.loc["margin__seed0", THREADS] == "4"
    # an edited manifest whose count is not a number is named, not a crash
    _set_machine(out / "runs" / "random__seed1.csv", {**here, THREADS: "many"})
    assert "**The runs used 3 thread counts (1, 4, many).**" in make_report(
        out / "results.csv").read_text()
    assert table.loc["margin__seed1", THREADS] == NOT_RECORDED
    assert table.loc["random__seed0", THREADS] == "1"


def test_a_run_resumed_with_another_thread_count_names_both(tmp_path: Path) -> None:
    from activegen.experiments.machine import log_machine, other_kinds, same_kind

    checkpoint = tmp_path / "run.npz"
    one = _as_a_run_records()
    two = {**one, THREADS: "2"}
    log_machine(checkpoint, one)
    checkpoint.write_bytes(b"a checkpoint")
    history = log_machine(checkpoint, two)
    assert history == [one, two] and other_kinds(history, two) == [one]
    older = {k: v for k, v in one.items() if k != THREADS}  # a record from before threads
    assert same_kind(older, two) and same_kind(two, older)
