"""One failure test per defect of issue 12, each with the input that used to slip through.

Each test reproduces the exact input from the issue: before the fix it ended in a traceback,
a silent wrong result or a security hole; now it is refused (naming the file or key), warned
about, or recomputed.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from _experiments import write_toml
from activegen.cli import main
from activegen.errors import ConfigError, DataError
from activegen.experiments.config import parse_config, with_overrides
from activegen.experiments.results import manifest_path, read_results
from activegen.experiments.runner import (
    load_experiment_data,
    run_experiment,
    run_specs,
    saved_config,
)
from activegen.experiments.stats import labels_to_reach
from activegen.server.web.app import create_app
from label_support import api_client, digits_config, make_session

#: Two classes, one seed, tiny budget: a whole experiment in about a second.
TINY: dict = {
    "name": "tiny",
    "seeds": [0],
    "supervised": False,
    "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.3},
    "loop": {"initial": 4, "batch": 4, "budget": 16},
    "strategies": [{"name": "margin"}, {"name": "entropy"}],
}


def _tiny(**changes) -> dict:
    config = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def _refused(data: dict, *needles: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "exp.toml")
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    return message


# -- 1. no 'random' strategy: the first strategy is the baseline ---------------------------
def test_1_experiment_without_random_uses_its_first_strategy_as_baseline(tmp_path: Path
                                                                         ) -> None:
    config = parse_config(_tiny(), "exp.toml")
    assert config.baseline == "margin"
    again = with_overrides(config, jobs=2, device="cpu")  # the path that used to refuse it
    assert again.baseline == "margin" and again.execution.jobs == 2
    results = run_experiment(config, tmp_path / "out", progress=False)
    assert saved_config(tmp_path / "out").baseline == "margin"  # a saved config re-parses
    assert set(read_results(results)["strategy"]) == {"margin", "entropy"}
    _refused(_tiny(**{"report.baseline": "random"}), "report.baseline", "'random'")


# -- 5. negative seeds: refused before anything is written --------------------------------
@pytest.mark.parametrize("key, value", [("seeds", [-1, 0]), ("data.split_seed", -3)])
def test_5_negative_seed_is_refused_before_anything_is_written(tmp_path: Path, capsys, key,
                                                               value) -> None:
    path = write_toml(tmp_path / "neg.toml", _tiny(**{key: value}))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert key.split(".")[-1] in err and "greater than or equal to 0" in err
    assert not out.exists()


# -- 3. finished-run CSVs verified against their manifest ---------------------------------
def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif how == "garbage":
        path.write_bytes(b"garbage\x00\x01\n\x02\x03\n")
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "manifest-lost":
        manifest_path(path).unlink()
    elif how == "one-digit-changed":
        text = path.read_text()
        i = text.rindex("0.")
        path.write_text(text[:i] + "1." + text[i + 2:])


@pytest.mark.parametrize("how", ["truncated", "garbage", "emptied", "manifest-lost",
                                 "one-digit-changed"])
def test_3_damaged_finished_run_is_named_and_recomputed(tmp_path: Path, caplog, how) -> None:
    config = parse_config(_tiny(), "exp.toml")
    out = tmp_path / "out"
    first = pd.read_csv(run_experiment(config, out, progress=False))
    run_csv = out / "runs" / "margin__seed0.csv"
    assert manifest_path(run_csv).is_file()
    _damage(run_csv, how)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        again = pd.read_csv(run_experiment(config, out, progress=False))
    assert str(run_csv) in caplog.text and "damaged finished run" in caplog.text
    timing = ["fit_seconds", "query_seconds", "label_seconds"]
    pd.testing.assert_frame_equal(first.drop(columns=timing), again.drop(columns=timing))


def test_3_report_of_a_damaged_run_is_refused_naming_it(tmp_path: Path) -> None:
    from activegen.experiments.results import write_results

    config = parse_config(_tiny(), "exp.toml")
    out = tmp_path / "out"
    run_experiment(config, out, progress=False)
    run_csv = out / "runs" / "entropy__seed0.csv"
    _damage(run_csv, "truncated")
    with pytest.raises(DataError, match=r"entropy__seed0.csv: damaged finished run"):
        write_results(out)


# -- 4. a semantically corrupt checkpoint is a damaged checkpoint --------------------------
@pytest.mark.parametrize("index, label, why", [
    (99999, 1, "a pool index is outside the pool"), (3, 42, "label 42 is outside"),
    (2, 1, "a pool image is asked or labeled twice")])
def test_4_impossible_checkpoint_is_refused_naming_it_and_why(tmp_path: Path, index, label,
                                                              why) -> None:
    from activegen._cache import data_fingerprint
    from activegen.engine import Checkpoint, Event

    config = parse_config(_tiny(**{"strategies": [{"name": "margin"}]}), "exp.toml")
    out = tmp_path / "out"
    pool, _ = load_experiment_data(config)
    events = [Event("taught", 0, np.array([0, 1, 2, index]), labels=np.array([0, 1, 0, label]))]
    checkpoint = out / "checkpoints" / "margin__seed0.npz"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(Checkpoint(events, pool=data_fingerprint(pool.to_float())).to_bytes())
    with pytest.raises(DataError, match=rf"margin__seed0.npz: impossible history \(taught: "
                                        rf"{why}"):
        run_experiment(config, out, progress=False)


# -- 6. plain mistakes end in one error line, not a traceback ------------------------------
@pytest.mark.parametrize("key, value, needle", [
    ("data.size", [0, 0], "data.size"),
    ("data.pad_to", [-4, 32], "data.pad_to"),
    ("learner", {"name": "linear-svm", "C": "big"}, "C: Input should be a valid number"),
])
def test_6_bad_values_are_refused_naming_the_key(key, value, needle) -> None:
    _refused(_tiny(**{key: value}), needle)


def test_6_out_that_is_a_file_is_refused(tmp_path: Path, capsys) -> None:
    path = write_toml(tmp_path / "exp.toml", _tiny())
    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["run", str(path), "--out", str(target), "--quiet"]) == 2
    assert "the output folder is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_6_label_store_in_an_uncreatable_folder_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match="cannot create the label store"):
        make_session(blocker / "sub" / "s.sqlite")


def test_6_label_config_device_is_checked() -> None:
    from activegen.server.config import parse_label_config

    data = {"name": "s", "data": {"dataset": "digits"}, "device": "gpu7",
            "loop": {"initial": 10, "batch": 5, "budget": 30}}
    with pytest.raises(ConfigError, match="device: 'gpu7' is not one of"):
        parse_label_config(data, "label.toml")


# -- 7. nonsense is refused or warned about -----------------------------------------------
def test_7_a_test_fraction_too_small_for_every_class_is_refused() -> None:
    config = parse_config(_tiny(**{"data.test_fraction": 0.001}), "exp.toml")
    with pytest.raises(ConfigError, match=r"test_fraction = 0.001"):
        load_experiment_data(config)


def test_7_a_small_test_set_is_warned_about(caplog) -> None:
    config = parse_config(_tiny(**{"data.test_fraction": 0.05}), "exp.toml")
    with caplog.at_level(logging.WARNING):
        load_experiment_data(config)
    assert "test_fraction = 0.05" in caplog.text and "steps of" in caplog.text


@pytest.mark.parametrize("thresholds", [[1.5, 0.9], [0.9, -1]])
def test_7_thresholds_outside_0_1_are_refused(thresholds) -> None:
    _refused(_tiny(**{"report.thresholds": thresholds}), "report.thresholds")


def test_7_label_counts_off_the_curve_are_warned(tmp_path: Path, caplog) -> None:
    from activegen.experiments.report import make_report

    config = parse_config(_tiny(), "exp.toml")
    results = run_experiment(config, tmp_path / "out", progress=False)
    with caplog.at_level(logging.WARNING, logger="activegen"):
        make_report(results, label_counts=[8, 13])
    assert "[13]" in caplog.text and "not on any learning curve" in caplog.text


def test_7_accuracy_outside_0_1_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("dataset,strategy,seed,round,n_labels,test_set,accuracy\n"
                    "d,a,0,0,10,t,0.5\nd,a,0,1,20,t,1.7\n")
    with pytest.raises(DataError, match=r"row 3 has 1.7"):
        read_results(path)


# -- 8-10, 14. the labeling server ---------------------------------------------------------
@pytest.fixture
def client(tmp_path: Path):
    session, _ = make_session(tmp_path / "s.sqlite", digits_config())
    yield api_client(create_app(session)), session
    session.close()


def test_8_ids_beyond_64_bits_get_a_4xx(client) -> None:
    http, session = client
    big = 2**63
    r = http.post("/api/label", json={"query_id": big, "label": 1, "labeler": "me"})
    assert r.status_code == 422
    assert http.get(f"/api/image/{big}.png").status_code == 404
    assert http.get(f"/api/image/{2**70}.png").status_code == 404
    assert session.store.read("SELECT COUNT(*) FROM labels")[0][0] == 0


@pytest.mark.parametrize("name", ["cats & dogs", '<img src=x onerror="alert(1)">',
                                  'say "hi"', "a]]>b"])
def test_9_label_studio_config_escapes_class_names(name) -> None:
    from activegen.server.interop.interchange import label_studio_config

    root = ElementTree.fromstring(label_studio_config([name, "plain"]))
    assert [c.get("value") for c in root.iter("Choice")] == [name, "plain", "can't tell"]
    assert [e.tag for e in root.iter()] == ["View", "Image", "Choices", "Choice", "Choice",
                                            "Choice"]  # nothing injected


@pytest.mark.parametrize("labeler", ["=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)"])
def test_9_csv_export_neutralises_formulas(client, labeler) -> None:
    http, _ = client
    query = http.post("/api/batch", json={"labeler": labeler}).json()["queries"][0]
    http.post("/api/label", json={"query_id": query["id"], "label": 2, "labeler": labeler})
    rows = list(csv.DictReader(io.StringIO(http.get("/api/export.csv").text)))
    assert rows[0]["labeler"] == "'" + labeler
    assert not rows[0]["labeler"].startswith(("=", "+", "-", "@"))


def test_10_page_cannot_be_framed_and_has_a_strict_csp(client) -> None:
    http, _ = client
    for route in ("/", "/api/state"):
        r = http.get(route)
        assert r.headers["x-frame-options"] == "DENY"
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # the inlined script (and style) are allowed by their exact hashes: the page runs
    import base64
    import hashlib
    import re

    page = http.get("/")
    for tag in ("script", "style"):
        bodies = re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", page.text, flags=re.S)
        assert bodies
        for body in bodies:
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in page.headers["content-security-policy"]
    assert ' style="' not in page.text and " onclick=" not in page.text  # CSP would block


def test_10_leases_need_a_post_with_the_request_header(client) -> None:
    from fastapi.testclient import TestClient

    http, session = client
    bare = TestClient(http.app)  # what an <img>, a form or a cross-site fetch can send
    assert bare.get("/api/batch", params={"labeler": "evil"}).status_code == 405
    assert bare.post("/api/batch", json={"labeler": "evil"}).status_code == 403
    assert bare.post("/api/label", json={"query_id": 1, "label": 1,
                                         "labeler": "evil"}).status_code == 403
    assert session.store.read("SELECT COUNT(*) FROM queries WHERE assigned_to IS NOT NULL"
                              )[0][0] == 0  # nothing leased by the refused requests
    assert http.post("/api/batch", json={"labeler": "me"}).json()["queries"]
    assert session.store.read("SELECT COUNT(*) FROM queries WHERE assigned_to='me'")[0][0] > 0


def test_14_delete_is_method_not_allowed(client) -> None:
    http, _ = client
    assert http.delete("/api/label").status_code == 405


# -- 12. labels-to-target is where the mean stays above it ---------------------------------
def test_12_a_one_round_blip_does_not_count_as_reaching_the_target() -> None:
    n = np.array([10, 20, 30, 40, 50])
    assert labels_to_reach(n, np.array([0.5, 0.96, 0.7, 0.95, 0.97]), 0.95) == 40
    assert labels_to_reach(n, np.array([0.5, 0.96, 0.7, 0.8, 0.9]), 0.95) != 20
    assert np.isnan(labels_to_reach(n, np.array([0.5, 0.96, 0.7, 0.8, 0.9]), 0.95))
    assert labels_to_reach(n, np.array([0.96] * 5), 0.95) == 10
    # brute force: the smallest count from which every later mean is at or above target
    rng = np.random.default_rng(0)
    for _ in range(200):
        acc = rng.random(5)
        ok = [i for i in range(5) if (acc[i:] >= 0.5).all()]
        expected = float(n[ok[0]]) if ok else float("nan")
        got = labels_to_reach(n, acc, 0.5)
        assert got == expected or (np.isnan(got) and np.isnan(expected))


def test_12_report_prints_counts_as_integers_and_savings_as_percentages(tmp_path: Path
                                                                         ) -> None:
    from activegen.experiments.report import make_report

    config = parse_config(_tiny(**{"supervised": True}), "exp.toml")
    results = run_experiment(config, tmp_path / "out", progress=False)
    text = make_report(results, baseline="margin", thresholds=(0.5,)).read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "margin" in line]
    assert table
    assert not any(".000 |" in line and "×full" in line for line in text.splitlines())
    assert " %" in text or "–" in text
    assert "not* corrected for multiple comparisons" in text


# -- 2. thread counts chosen deliberately on the in-process path ---------------------------
@pytest.mark.parametrize("threads", [1, 2])
def test_2_in_process_runs_use_the_configured_thread_counts(tmp_path: Path, threads) -> None:
    import threadpoolctl
    import torch

    from activegen.experiments.executors import SerialExecutor

    config = parse_config(_tiny(**{"execution": {"threads": threads},
                                   "strategies": [{"name": "margin"}]}), "exp.toml")
    seen: list[tuple[int, set[int]]] = []

    def on_round(run_id: str, round_: int) -> None:  # called inside the run
        pools = {p["num_threads"] for p in threadpoolctl.threadpool_info()}
        seen.append((torch.get_num_threads(), pools))

    before = torch.get_num_threads()
    (tmp_path / "runs").mkdir()
    list(SerialExecutor().run(config, run_specs(config)[:1], tmp_path, on_round))
    assert seen and all(t == threads and pools <= {threads} for t, pools in seen)
    assert torch.get_num_threads() == before  # restored after the run


# -- 13. progress when the output is not a terminal ----------------------------------------
def test_13_progress_lines_with_timestamps_when_not_a_tty(tmp_path: Path, capsys) -> None:
    path = write_toml(tmp_path / "exp.toml", _tiny())
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "2 run(s) to do" in err
    assert "run 1 of 2 finished" in err and "run 2 of 2 finished" in err
    assert all(line[:4].isdigit() and line[4] == "-" for line in err.splitlines()
               if "activegen:" in line)


# -- 14. small things ------------------------------------------------------------------------
def test_14_shipped_label_config_advertises_only_real_commands() -> None:
    from activegen.cli import build_parser

    text = (Path(__file__).resolve().parents[1] / "src/activegen/configs/label-digits.toml"
            ).read_text()
    for line in text.splitlines():
        if line.startswith("#") and "activegen label" in line:
            command = line.lstrip("# ").split("(")[0].split()
            build_parser().parse_args(command[1:])  # exits on an unknown option


def test_14_verbose_works_after_the_subcommand() -> None:
    from activegen.cli import build_parser

    assert build_parser().parse_args(["run", "x.toml", "-v"]).verbose
    assert build_parser().parse_args(["-v", "run", "x.toml"]).verbose
    assert not build_parser().parse_args(["run", "x.toml"]).verbose


def test_14_run_help_names_the_real_default_out() -> None:
    from activegen.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    assert "config file name" in run.format_help().replace("\n", " ").replace("  ", " ")


def test_14_strategies_list_is_plain_text_and_whole_sentences(capsys) -> None:
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":class:" not in out
    for line in out.splitlines():
        assert line.rstrip().endswith((".", ")")), line


def test_14_datasets_table_keeps_file_names_whole(capsys, monkeypatch) -> None:
    from activegen.data.registry import list_datasets

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for info in list_datasets():
        for name in info.files:
            assert f"  file:  {name}" in lines, name


def test_14_readme_says_when_the_browser_test_is_skipped() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "test_server_browser.py" in readme and "skipped" in readme and "chromium" in readme


def test_corrupt_label_store_is_refused_naming_it(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    store.write_bytes(b"SQLite format 3\x00" + b"\x07" * 2000)  # a damaged database
    with pytest.raises(DataError, match=r"s\.sqlite: not a usable label store"):
        make_session(store)
