"""``activegen run CONFIG --only LABEL … --seeds K,…``: exactly the named runs, strategy by
strategy; a later plain ``run`` finishes the rest with the rows a whole run gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from _experiments import SMALL, results_without_timings, small_config, write_toml
from activegen.cli import main
from activegen.errors import ConfigError
from activegen.experiments.runner import RunSpec, select_runs


def _run_csvs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "runs").glob("*.csv"))


def _said(capsys: pytest.CaptureFixture) -> str:
    """What the command printed to stderr, with the console's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def test_only_runs_the_named_runs_and_a_plain_run_finishes_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_toml(tmp_path / "c.toml", SMALL)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "-q", "--only", "margin",
                 "--seeds", "1"]) == 0
    assert _run_csvs(out) == ["margin__seed1.csv"]
    assert "3 run(s) of the experiment still pending" in _said(capsys)
    first = (out / "runs" / "margin__seed1.csv").read_bytes()
    partial = pd.read_csv(out / "results.csv")
    assert set(zip(partial["strategy"], partial["seed"], strict=True)) == {("margin", 1)}

    assert main(["run", str(config), "--out", str(out), "-q"]) == 0  # the same folder, plain
    assert _run_csvs(out) == ["margin__seed0.csv", "margin__seed1.csv", "random__seed0.csv",
                              "random__seed1.csv"]
    assert (out / "runs" / "margin__seed1.csv").read_bytes() == first  # not run again
    assert "still pending" not in _said(capsys)
    whole = tmp_path / "whole"
    assert main(["run", str(config), "--out", str(whole), "-q"]) == 0
    pd.testing.assert_frame_equal(results_without_timings(out), results_without_timings(whole))


def test_runs_are_chosen_strategy_by_strategy_in_the_order_named() -> None:
    config = small_config(seeds=[0, 1, 2], supervised=True)
    assert select_runs(config, ["margin", "random"], [2, 0]) == [
        RunSpec("margin", 0), RunSpec("margin", 2), RunSpec("random", 0), RunSpec("random", 2)]
    # seeds alone: every strategy, the fully supervised reference first as the config has it
    assert select_runs(config, None, [1]) == [
        RunSpec("supervised", 1), RunSpec("random", 1), RunSpec("margin", 1)]
    assert select_runs(config, ["supervised"]) == [RunSpec("supervised", s) for s in (0, 1, 2)]
    assert len(select_runs(config)) == 9


def test_a_strategy_or_seed_the_config_lacks_is_refused_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_toml(tmp_path / "c.toml", SMALL)
    out = tmp_path / "out"
    for flags, message in ((["--only", "bald"], "no strategy 'bald' in the experiment; its "
                            "strategies are: random, margin"),
                           (["--seeds", "0,7"], "no seed 7 in the experiment; its seeds are: 0, 1"),
                           (["--seeds", "x"], "'x' is not a comma-separated list of seeds")):
        try:
            code = main(["run", str(config), "--out", str(out), "-q", *flags])
        except SystemExit as exc:  # argparse's own usage error
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    with pytest.raises(ConfigError, match="no strategy 'bald'"):
        select_runs(small_config(), ["margin", "bald"])


def test_a_part_without_active_learning_runs_reports_nothing_yet(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_toml(tmp_path / "c.toml", {**SMALL, "supervised": True})
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "-q", "--only", "supervised",
                 "--seeds", "0"]) == 0
    assert _run_csvs(out) == ["supervised__seed0.csv"]
    said = _said(capsys)
    assert "report: none yet" in said and "5 run(s) of the experiment still pending" in said


def test_two_folders_share_an_experiment_by_parts(tmp_path: Path) -> None:
    # docs/scaling.md: each machine runs its part into its own folder; the finished runs of
    # one, copied into the other, are taken as finished there (not run again)
    config = write_toml(tmp_path / "c.toml", SMALL)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(config), "--out", str(a), "-q", "--only", "margin"]) == 0
    assert main(["run", str(config), "--out", str(b), "-q", "--only", "random"]) == 0
    for path in (a / "runs").iterdir():  # each run's CSV and its manifest
        shutil.copy2(path, b / "runs" / path.name)
    copied = {p.name: p.read_bytes() for p in (b / "runs").glob("*.csv")}
    assert main(["run", str(config), "--out", str(b), "-q"]) == 0
    assert {p.name: p.read_bytes() for p in (b / "runs").glob("*.csv")} == copied
    whole = tmp_path / "whole"
    assert main(["run", str(config), "--out", str(whole), "-q"]) == 0
    pd.testing.assert_frame_equal(results_without_timings(b), results_without_timings(whole))
