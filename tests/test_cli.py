"""The command line: help everywhere, one-line errors with status 2, and the demo end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from activegen.cli import main
from activegen.experiments.results import RESULT_COLUMNS
from activegen.strategies import STRATEGIES

COMMANDS = ["run", "report", "datasets", "strategies"]


@pytest.mark.parametrize("argv", [["--help"], *([c, "--help"] for c in COMMANDS)],
                         ids=lambda a: " ".join(a))
def test_help_works_on_every_command(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: activegen") and "--help" in out


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`label-export --format` had no help text (nor `gaal-quality` a description)."""
    import argparse

    from activegen.cli import build_parser

    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {action.option_strings or action.dest}"
              for name, command in sub.choices.items() for action in command._actions
              if not action.help]
    assert not silent, silent
    assert all(command.description for command in sub.choices.values())
    audit = sub.choices["label"]._option_string_actions["--audit"].help
    assert "ON TOP of --budget" in audit  # the audit's labels are not the budget's


def _error_line(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``argv``, expect status 2 and a single error line on stderr; return it."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("activegen") and "error: " in lines[0]
    assert "Traceback" not in captured.err
    return lines[0]


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    assert "invalid choice: 'bogus'" in _error_line(["bogus"], capsys)
    assert "required: dir" in _error_line(["report"], capsys)
    assert "unrecognized arguments: --colour" in _error_line(["run", "--colour"], capsys)
    assert "argument --at: invalid int value" in _error_line(["report", "x", "--at", "ten"],
                                                             capsys)


def test_input_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "no such config file" in _error_line(["run", str(tmp_path / "none.toml")], capsys)
    bad = tmp_path / "bad.toml"
    bad.write_text("seeds = [0\n")
    assert "not valid TOML" in _error_line(["run", str(bad)], capsys)
    bad.write_text('seeds = [0]\nstrategies = [{name = "random"}, {name = "magic"}]\n'
                   "[data]\ntest_fraction = 0.3\ncolour = 1\n[loop]\ninitial = 4\nbatch = 2\n"
                   "budget = 3\n")
    line = _error_line(["run", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert "data.colour: unknown key" in line and "loop: budget (3) is below" in line
    assert not (tmp_path / "o").exists()  # refused before any work
    assert "no results table here" in _error_line(["report", str(tmp_path)], capsys)
    (tmp_path / "results.csv").write_text("just,a\nfew,words\n")
    assert "missing column(s)" in _error_line(["report", str(tmp_path)], capsys)
    (tmp_path / "config.json").write_text("[1, 2")
    assert "not a configuration written by" in _error_line(["report", str(tmp_path)], capsys)


def test_strategies_and_datasets_list(capsys: pytest.CaptureFixture) -> None:
    assert main(["strategies"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == STRATEGIES.names()
    assert all(len(line.split()) > 2 for line in lines)  # each has a description
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist5k", "usps", "cifar10", "chestmnist", "folder"):
        assert name in out


# -- the demo, end to end ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["run", "--out", str(out), "-q"]) == 0
    return out


def test_demo_writes_results_and_plots(demo_run: Path) -> None:
    results = pd.read_csv(demo_run / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    active = results[results["strategy"] != "supervised"]
    # 10 seeds × 2 strategies × 15 rounds (10, 20, …, 150 labels) on one test set.
    assert len(active) == 10 * 2 * 15
    assert sorted(active["strategy"].unique()) == ["margin", "random"]
    assert sorted(active["n_labels"].unique()) == list(range(10, 151, 10))
    assert (active.groupby(["strategy", "seed"]).size() == 15).all()
    supervised = results[results["strategy"] == "supervised"]
    assert len(supervised) == 10 and supervised["seed"].tolist() == list(range(10))
    assert results["test_set"].unique().tolist() == ["digits-test"]
    assert results["accuracy"].between(0, 1).all()
    for name in ("learning_curves.png", "learning_curves_log2.png"):
        assert (demo_run / name).read_bytes().startswith(b"\x89PNG")
    for name in ("report.md", "summary.csv", "pvalues.csv", "wins_digits-test.csv",
                 "config.json"):
        assert (demo_run / name).is_file()
    assert len(list((demo_run / "runs").glob("*.csv"))) == 30
    queries = sorted((demo_run / "queries" / "margin__seed0").glob("round_*.npz"))
    assert len(queries) == 14  # one per query round


def test_the_demo_shows_a_win(demo_run: Path) -> None:
    """The old demo (5 vs 7) reached 0.99 by 14-20 labels: it showed the machinery, not a win.
    On ten classes margin sampling is ahead of random once it chooses, and neither curve is
    at full supervision by the budget's middle."""
    results = pd.read_csv(demo_run / "results.csv")
    mean = results.groupby(["strategy", "n_labels"])["accuracy"].mean()
    full = results[results["strategy"] == "supervised"]["accuracy"].mean()
    for n in (50, 100, 150):
        assert mean["margin", n] - mean["random", n] >= 0.02, n
    assert mean["random", 50] < 0.9 * full and mean["margin", 50] < 0.95 * full


def test_running_again_skips_finished_runs(demo_run: Path, capsys) -> None:
    before = (demo_run / "results.csv").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (demo_run / "runs").glob("*.csv")}
    assert main(["run", "--out", str(demo_run), "-q"]) == 0
    assert (demo_run / "results.csv").read_bytes() == before  # timings included: not re-run
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_deleted_run_is_redone_with_the_same_rows(demo_run: Path, tmp_path: Path) -> None:
    """Delete one run's CSV and checkpoint: the next command redoes only that run and gets
    the same accuracies (runs are deterministic; resuming mid-run is tested in test_loop)."""
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy)
    (copy / "runs" / "margin__seed3.csv").unlink()
    (copy / "checkpoints" / "margin__seed3.npz").unlink()
    assert main(["run", "--out", str(copy), "-q"]) == 0
    columns = ["strategy", "seed", "round", "n_labels", "test_set", "accuracy"]
    old = pd.read_csv(demo_run / "results.csv")[columns]
    new = pd.read_csv(copy / "results.csv")[columns]
    pd.testing.assert_frame_equal(old, new)


def test_report_command_remakes_the_report(demo_run: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy)
    for name in ("report.md", "summary.csv", "learning_curves.png"):
        (copy / name).unlink()
    shutil.rmtree(copy / "runs")  # the report needs results.csv alone
    assert main(["report", str(copy), "--at", "10", "150"]) == 0
    assert capsys.readouterr().out.strip() == str(copy / "report.md")
    text = (copy / "report.md").read_text()
    assert text.startswith("# demo: digits, 10 classes")  # the title from the saved config
    assert "acc @ 150" in text and "acc @ 50" not in text
    assert (copy / "learning_curves.png").exists()


def test_a_folder_of_another_config_is_refused(demo_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "other.toml"
    config.write_text('seeds = [0]\nstrategies = [{name = "random"}]\n'
                      '[data]\nclasses = [5, 7]\ntest_fraction = 0.4\n'
                      "[loop]\ninitial = 4\nbatch = 2\nbudget = 8\n")
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy)
    line = _error_line(["run", str(config), "--out", str(copy), "-q"], capsys)
    assert "holds results of a different configuration" in line
    assert len(list((copy / "runs").glob("*.csv"))) == 30  # nothing touched


def test_report_works_when_the_saved_config_no_longer_validates(demo_run: Path,
                                                                  tmp_path: Path) -> None:
    import json

    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy)
    stamp = json.loads((copy / "config.json").read_text())
    stamp["config"]["strategies"][1]["name"] = "a-strategy-of-another-version"
    (copy / "config.json").write_text(json.dumps(stamp))
    assert main(["report", str(copy)]) == 0
    assert "margin" in (copy / "report.md").read_text()


def test_report_reference_option(demo_run: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy)
    assert main(["report", str(copy), "--reference", "margin"]) == 0
    assert "## Paired tests against `margin`" in (copy / "report.md").read_text()
    vs = pd.read_csv(copy / "pvalues_vs_margin.csv")
    assert "random" in set(vs["strategy"]) and "margin" not in set(vs["strategy"])
    capsys.readouterr()
    line = _error_line(["report", str(copy), "--reference", "no-such"], capsys)
    assert "'no-such'" in line and "margin" in line


def test_run_set_changes_keys_before_validation(tmp_path: Path, capsys) -> None:
    """``--set`` writes a dotted key with a TOML value (a bare word is a string); a bad one
    is refused in one line before anything is written."""
    from activegen.experiments.config import load_config

    config = tmp_path / "c.toml"
    config.write_text('seeds = [0]\nsupervised = false\n[data]\ntest_fraction = 0.3\n'
                      '[loop]\ninitial = 10\nbatch = 10\nbudget = 30\n'
                      '[[strategies]]\nname = "random"\n')
    changed = load_config(config, ["loop.budget=20", "learner.name=logistic-regression",
                                   "features.source=pixels", 'data.classes=[3, 5]',
                                   "report={ baseline = \"random\" }"])
    assert changed.loop.budget == 20 and changed.learner.name == "logistic-regression"
    assert changed.data.classes == [3, 5] and changed.report.baseline == "random"
    assert changed.fingerprint() != load_config(config).fingerprint()
    out = tmp_path / "out"
    for bad, says in ((["--set", "loop.budget"], "write KEY=VALUE"),
                      (["--set", "loop.budget=[1"], "the value is not TOML"),
                      (["--set", "loop.budget.x=1"], "loop.budget is not a table"),
                      (["--set", "loop.budget=5"], "budget (5) is below the initial")):
        assert says in _error_line(["run", str(config), "--out", str(out), *bad], capsys)
        assert not out.exists()
    assert main(["run", str(config), "--out", str(out), "--set", "loop.budget=20"]) == 0
    assert pd.read_csv(out / "results.csv")["n_labels"].max() == 20
