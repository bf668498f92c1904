"""The live loop with a real Label Studio server.

The server is the PyPI ``label-studio`` package in its own virtual environment (its pins clash
with ours): ``.ci/run`` makes it at ``.ls-venv``; ``ACTIVEGEN_LABEL_STUDIO`` may name another
``label-studio`` executable. Without one the live tests skip, saying so; the parsing tests
below run everywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from activegen.cli import _images_label_config, build_parser, main
from activegen.errors import ConfigError
from activegen.oracles.base import ABSTAIN
from activegen.server.core.errors import InvalidImport
from activegen.server.core.session import LabelSession
from activegen.server.interop.label_studio import (
    LABELER,
    LabelStudioClient,
    LabelStudioError,
    LabelStudioSync,
)
from activegen.server.interop.label_studio_tasks import choice_result, task_answer
from activegen.server.opening import open_session
from test_image_folder_labeling import NAMES, make_folders

ROOT = Path(__file__).resolve().parent.parent


def _label_studio_executable() -> Path | None:
    named = os.environ.get("ACTIVEGEN_LABEL_STUDIO")
    path = Path(named) if named else ROOT / ".ls-venv" / "bin" / "label-studio"
    return path if path.is_file() else None


# -- without a server ------------------------------------------------------------------------
def test_task_answer_takes_the_latest_finished_choice() -> None:
    def ann(i: int, when: str, choice: str | None, cancelled: bool = False) -> dict:
        return {"id": i, "updated_at": when, "was_cancelled": cancelled,
                "result": choice_result(choice) if choice else []}

    assert task_answer({"id": 1, "annotations": []}, NAMES) is None
    assert task_answer({"id": 1, "annotations": [ann(1, "2026-01-01", None)]}, NAMES) is None
    task = {"id": 1, "annotations": [ann(1, "2026-01-02", "two"), ann(2, "2026-01-01", "one"),
                                     ann(3, "2026-01-03", "zero", cancelled=True)]}
    assert task_answer(task, NAMES) == 2
    assert task_answer({"id": 1, "annotations": [ann(1, "x", "can't tell")]}, NAMES) == ABSTAIN
    with pytest.raises(InvalidImport, match="task 7: class 'cat' is not one of"):
        task_answer({"id": 7, "annotations": [ann(1, "x", "cat")]}, NAMES)
    two = {"id": 8, "annotations": [{"id": 1, "result": choice_result("one")
                                     + choice_result("two")}]}
    with pytest.raises(InvalidImport, match="task 8: its annotation has 2 choices"):
        task_answer(two, NAMES)
    # a JSON-MIN row (an export's flat form) is read by the same reader
    assert task_answer({"id": 9, "image": "x.png", "label": "one"}, NAMES) == 1
    assert task_answer({"id": 9, "image": "x.png"}, NAMES) is None


def test_client_refuses_bad_settings_and_names_an_unreachable_server() -> None:
    with pytest.raises(ConfigError, match="needs http"):
        LabelStudioClient("localhost:8080", "t")
    with pytest.raises(ConfigError, match="token is empty"):
        LabelStudioClient("http://localhost:8080", "")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    client = LabelStudioClient(f"http://127.0.0.1:{port}", "t", timeout=5)
    with pytest.raises(LabelStudioError, match=r"unreachable \(GET /api/projects/3\)"):
        client.project(3)


# -- against Label Studio ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioClient]:
    """A Label Studio server on 127.0.0.1 with one user and its API token; stopped after."""
    exe = _label_studio_executable()
    if exe is None:
        pytest.skip("no Label Studio: make its venv with `python3 -m venv .ls-venv && "
                    ".ls-venv/bin/pip install label-studio` (what .ci/run does) or set "
                    "ACTIVEGEN_LABEL_STUDIO to a label-studio executable")
    data = tmp_path_factory.mktemp("label-studio")
    port, token = _free_port(), secrets.token_hex(20)
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data),
           "LABEL_STUDIO_USERNAME": "tester@example.com",
           "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(12),
           "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false",
           "LATEST_VERSION_CHECK": "false"}
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data), "--enable-legacy-api-token"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("Label Studio exited while starting:\n"
                                   + (data / "server.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as r:
                    if json.loads(r.read()).get("status") == "UP":
                        break
            except OSError:
                pass
            if time.monotonic() - started > 300:
                raise RuntimeError("Label Studio did not answer /health within 300 s")
            time.sleep(1)
        print(f"Label Studio up in {time.monotonic() - started:.1f} s")
        yield LabelStudioClient(url, token)
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


def _config(pool_dir: Path, known: Path, extra: tuple[str, ...] = ()) -> object:
    """Two rounds of 6: a session file's [loop] with the command line's flags over it."""
    session_file = known.with_name("session.toml")
    session_file.write_text("[loop]\ninitial = 6\nbatch = 6\n")
    args = build_parser().parse_args(
        ["label", str(session_file), "--images", str(pool_dir), "--classes", ",".join(NAMES),
         "--size", "16", "--channels", "1", "--audit", "0", "--budget", "12", "--labels",
         str(known), *extra])
    return _images_label_config(args)


def _known_labels(tmp_path: Path, truth: dict[str, int]) -> Path:
    """Two known labels per class, so round 0 already has a model (and pre-annotations)."""
    rows = []
    for c in range(len(NAMES)):
        rows += [f"{p},{NAMES[c]}" for p in sorted(truth) if truth[p] == c][:2]
    path = tmp_path / "known.csv"
    path.write_text("path,label\n" + "\n".join(rows) + "\n")
    return path


def _queries_of_round(session: LabelSession, round_: int) -> list[int]:
    return [int(r[0]) for r in session.store.read(
        "SELECT pool_index FROM queries WHERE round=? AND source='session' ORDER BY position",
        (round_,))]


def _reference_round1(tmp_path: Path, config: object, answers: list[int], name: str
                      ) -> list[int]:
    """Round 1 of the same session answered directly (no Label Studio)."""
    ref = open_session(config, tmp_path / name)  # type: ignore[arg-type]
    try:
        assert ref.wait_ready(120)  # the background worker prepares round 0, then round 1
        for row, y in zip(ref.batch("ref").queries, answers, strict=True):
            ref.label(row.id, y, "ref")
        assert ref.wait_ready(120)
        return _queries_of_round(ref, 1)
    finally:
        ref.close()


@pytest.mark.slow
def test_live_loop_with_label_studio(label_studio: LabelStudioClient, tmp_path: Path) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=90, n_held=0)
    config = _config(pool_dir, _known_labels(tmp_path, truth))
    session = open_session(config, tmp_path / "s.sqlite")  # type: ignore[arg-type]
    try:
        sync = LabelStudioSync(session, label_studio, title="activegen test")
        project = label_studio.project(sync.project_id)
        assert "Choices" in project["label_config"] and "can't tell" in project["label_config"]
        first = sync.sync()
        assert (first.pulled, first.pushed, first.round) == (0, 6, 0)
        tasks = label_studio.tasks(sync.project_id)
        # the strategy's order is the task order, and each task names its file
        round1 = _queries_of_round(session, 0)
        assert [t["data"]["pool_index"] for t in tasks] == round1
        assert [t["data"]["path"] for t in tasks] == [session.files[i] for i in round1]
        # pre-annotations: the current model's class and probability
        proba = session.learner.predict_proba(session.X_pool[round1])  # type: ignore[union-attr]
        for task, p in zip(tasks, proba, strict=True):
            (prediction,) = task["predictions"]
            assert prediction["score"] == pytest.approx(float(p.max()), abs=1e-6)
            assert prediction["result"][0]["value"]["choices"] == [NAMES[int(p.argmax())]]
        assert sync.sync().pushed == 0  # nothing pushed twice

        # a person annotates through Label Studio (the truth, one "can't tell")
        answers = []
        for k, task in enumerate(tasks):
            y = ABSTAIN if k == 2 else truth[task["data"]["path"]]
            answers.append(y)
            label_studio.annotate(task["id"], choice_result(
                "can't tell" if y == ABSTAIN else NAMES[y]))
        second = sync.sync()
        assert (second.pulled, second.pushed, second.round) == (6, 6, 1)
        stored = {r["pool_index"]: (r["label"], r["labeler"]) for r in session.store.answered()
                  if r["source"] == "session"}
        assert stored == {i: (y, LABELER) for i, y in zip(round1, answers, strict=True)}
        # ... and they chose round 1: exactly what answering them directly gives, not what
        # other answers give
        round2 = _queries_of_round(session, 1)
        assert round2 == _reference_round1(tmp_path, config, answers, "same.sqlite")
        other = [(y + 1) % len(NAMES) if y != ABSTAIN else 0 for y in answers]
        assert round2 != _reference_round1(tmp_path, config, other, "other.sqlite")
        tasks2 = label_studio.tasks(sync.project_id)[6:]
        assert [t["data"]["pool_index"] for t in tasks2] == round2
        assert all(t["predictions"][0]["model_version"] == "activegen-round-1" for t in tasks2)
    finally:
        session.close()

    # reopened, the store keeps its project: nothing doubles,
    # and the last round's annotations finish the session
    for task in tasks2:
        label_studio.annotate(task["id"], choice_result(NAMES[truth[task["data"]["path"]]]))
    reopened = open_session(config, tmp_path / "s.sqlite")  # type: ignore[arg-type]
    try:
        again = LabelStudioSync(reopened, label_studio)
        assert again.project_id == sync.project_id
        with pytest.raises(ConfigError, match="syncs with Label Studio project"):
            LabelStudioSync(reopened, label_studio, project_id=sync.project_id + 1)
        done = again.sync()
        assert (done.pulled, done.pushed, done.finished) == (6, 0, True)
        assert len(label_studio.tasks(sync.project_id)) == 12
        labels = np.array([r["label"] for r in reopened.store.answered()
                           if r["source"] == "session"])
        assert len(labels) == 12
    finally:
        reopened.close()


@pytest.mark.slow
def test_label_studio_command_line(label_studio: LabelStudioClient, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=40, n_held=0)
    known = _known_labels(tmp_path, truth)
    args = ["label-studio", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size",
            "16", "--channels", "1", "--audit", "0", "--budget", "10", "--labels", str(known),
            "--store", str(tmp_path / "cli.sqlite"), "--url", label_studio.url, "--ls-token",
            label_studio.token, "--once"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 answers pulled, 10 tasks pushed" in out
    project = int(out.split("/projects/")[1].split()[0])
    tasks = label_studio.tasks(project)
    assert len(tasks) == 10 and all(t["predictions"] for t in tasks)
    for task in tasks:
        label_studio.annotate(task["id"], choice_result(NAMES[truth[task["data"]["path"]]]))
    assert main(args) == 0
    assert "10 answers pulled, 0 tasks pushed (finished)" in capsys.readouterr().out
    assert main([*args[:-1], "--ls-token", "wrong-token", "--once"]) == 2
    assert "HTTP 401" in capsys.readouterr().err


def test_a_session_without_audit_opens(tmp_path: Path) -> None:
    """``--audit 0`` (the live tests use it): no audit sample, so no audit at all."""
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=20, n_held=0)
    session = open_session(_config(pool_dir, _known_labels(tmp_path, truth)),  # type: ignore[arg-type]
                           tmp_path / "s.sqlite")
    try:
        assert session.audit is None and "audit" not in session.state()
        assert session.files is not None and len(session.files) == 20
    finally:
        session.close()
