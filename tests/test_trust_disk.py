"""Full and read-only disks: every command says which file and why in one line, an answer the
store cannot write is a 507/503 JSON refusal (nothing acknowledged is lost), and a cache
folder that cannot be written only costs its speed-up."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from activegen import _atomic
from activegen.cli import main
from activegen.server.core.session import LabelSession
from activegen.server.web.app import create_app
from label_support import api_client, make_session
from test_trust_inputs import open_folder_session, photo_folder

EXPERIMENT = """name = "tiny"
seeds = [0]
supervised = false
strategies = [{name = "random"}]
[data]
dataset = "digits"
classes = [3, 8]
test_fraction = 0.3
[loop]
initial = 4
batch = 4
budget = 12
"""


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (root only; skipped elsewhere)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small or read-only file system needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()[:80]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _no_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every atomic write fails as on a full disk (where mounting is not possible)."""
    real = _atomic.tempfile.mkstemp

    def full(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)  # type: ignore[arg-type]
        os.close(fd)
        os.unlink(name)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", full)


def _one_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


# -- 10. every command on a full or read-only disk -------------------------------------------
def test_10_run_on_a_full_disk_is_one_line_and_resumes(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(EXPERIMENT)
    with _tmpfs(tmp_path / "full", "size=48k") as full:
        assert main(["run", str(config), "--out", str(full / "out"), "-q"]) == 1
        _one_line(capsys.readouterr().err, str(full / "out"), "the disk is full",
                  "run the same command again")


@pytest.mark.parametrize("command", ["run", "predict", "report", "label-export"])
def test_10_each_command_names_the_file_it_could_not_write(
        tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(EXPERIMENT)
    if command in ("report",):
        assert main(["run", str(config), "--out", str(tmp_path / "out"), "-q"]) == 0
    if command == "predict":
        from test_trust_inputs import _pixel_model

        _pixel_model(tmp_path / "m.npz")
        photo_folder(tmp_path / "photos", 2)
    if command == "label-export":
        from test_trust_inputs import _answered_store

        _answered_store(tmp_path)
    capsys.readouterr()
    _no_space(monkeypatch)
    argv = {"run": ["run", str(config), "--out", str(tmp_path / "new"), "-q"],
            "predict": ["predict", str(tmp_path / "m.npz"), str(tmp_path / "photos"),
                        "--out", str(tmp_path / "p.csv")],
            "report": ["report", str(tmp_path / "out")],
            "label-export": ["label-export", str(tmp_path / "s.sqlite"), "--out",
                             str(tmp_path / "e.csv")]}[command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    _one_line(err, "the disk is full", "run the same command again", str(tmp_path))
    assert ".tmp" not in err  # the file asked for, not the temporary one


def test_10_a_read_only_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from test_trust_inputs import _answered_store

    store = _answered_store(tmp_path)
    with _tmpfs(tmp_path / "ro", "ro,size=16k") as ro:
        assert main(["label-export", str(store), "--out", str(ro / "e.csv")]) == 1
        _one_line(capsys.readouterr().err, f"{ro / 'e.csv'}: the file system is read-only")


class _FullDisk:
    """A store connection whose writes of answers fail as SQLite's do on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.full = conn, False

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if self.full and sql.startswith("INSERT INTO labels"):
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
            raise exc
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def _answers_on_a_full_disk(session: LabelSession, fill: Callable[[bool], None]) -> None:
    client = api_client(create_app(session))
    queries = client.post("/api/batch", json={"labeler": "a"}).json()["queries"]
    first = client.post("/api/label", json={"query_id": queries[0]["id"], "label": 0,
                                            "labeler": "a"})
    assert first.status_code == 200
    fill(True)
    refused = [client.post("/api/label", json={"query_id": q["id"], "label": 1,
                                               "labeler": "a"}) for q in queries[1:]]
    assert {r.status_code for r in refused} == {507}, refused[0].text
    detail = refused[0].json()["detail"]
    assert "the disk is full; this change is not stored" in detail
    assert str(session.store_path) in detail
    fill(False)  # space freed: the same answer is taken
    again = client.post("/api/label", json={"query_id": queries[1]["id"], "label": 1,
                                            "labeler": "a"})
    assert again.status_code == 200
    labels = session.store.read("SELECT query_id, label FROM labels ORDER BY id")
    assert labels == [(queries[0]["id"], 0), (queries[1]["id"], 1)]


def test_10_an_answer_on_a_full_disk_is_a_507_and_loses_nothing(tmp_path: Path) -> None:
    session, _ = make_session(tmp_path / "s.sqlite")
    try:
        full = _FullDisk(session.store._conn)
        session.store._conn = full  # type: ignore[assignment]

        def fill(on: bool) -> None:
            full.full = on

        _answers_on_a_full_disk(session, fill)
    finally:
        session.store._conn = full.conn
        session.close()


def test_10_an_answer_on_a_really_full_disk(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "disk", "size=2m") as disk:
        session, _ = make_session(disk / "s.sqlite")
        try:
            filler = disk / "filler"

            def fill(on: bool) -> None:
                if not on:
                    filler.unlink()
                    return
                with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as handle:
                    while True:
                        handle.write(b"\0" * 4096)

            _answers_on_a_full_disk(session, fill)
        finally:
            session.close()


def test_10_a_read_only_cache_folder_only_costs_its_speed_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = photo_folder(tmp_path / "photos", 16)
    with _tmpfs(tmp_path / "ro", "ro,size=16k") as ro:
        with caplog.at_level(logging.WARNING):
            session = open_folder_session(folder, tmp_path / "s.sqlite", "--audit", "2",
                                          cache_dir=ro / "cache")
        try:
            assert session.batch("a").queries
        finally:
            session.close()
    assert "cannot write the cache file" in caplog.text and "goes on without it" in caplog.text
