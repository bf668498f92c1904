"""Start a labeling session's web server (what ``activegen label`` runs)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from activegen.errors import ActivegenError, ConfigError, DataError
from activegen.server.app import LOOPBACK_HOSTS, create_app, is_loopback
from activegen.server.config import LabelConfig, default_store_path, load_label_config
from activegen.server.interchange import PARSERS
from activegen.server.session import LabelSession, RequestError, load_session_data


def read_import_file(path: Path, classes: list[str]) -> list[tuple[int, int]]:
    """``(pool_index, label)`` pairs from a CSV, a Label Studio export or an activegen JSON."""
    if not path.is_file():
        raise DataError(f"{path}: no such file to import")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        fmt = "csv"
    else:
        try:
            fmt = "labelstudio" if isinstance(json.loads(text), list) else "json"
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: neither CSV (by its name) nor JSON ({exc})") from None
    try:
        items, _ = PARSERS[fmt](text, classes)
    except RequestError as exc:
        raise DataError(f"{path}: {exc.detail}") from None
    return items


@dataclass
class PreparedServer:
    """A session, its app and a bound socket, ready to serve."""

    session: LabelSession
    server: object  # uvicorn.Server
    sock: socket.socket
    url: str
    token: str | None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ActivegenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def prepare_server(config: LabelConfig, config_path: Path | None = None, host: str | None = None,
                   port: int | None = None, store: Path | None = None,
                   import_file: Path | None = None, token: str | None = None) -> PreparedServer:
    """Load the data, open (or resume) the session, bind the socket; nothing served yet."""
    host = host or config.labeling.host
    port = config.labeling.port if port is None else port
    token = token or os.environ.get("ACTIVEGEN_TOKEN") or None
    if not is_loopback(host) and token is None:
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise ConfigError("the token must be at least 16 characters")
    if config.images is not None:  # an unlabeled folder (issue 13); --import is [images] labels
        if import_file is not None:
            raise ConfigError("with --images, give known labels as --labels (a CSV path,label)")
        from activegen.server.practitioner import ImageFolderSession

        sock = bind(host, port)
        try:
            session: LabelSession = ImageFolderSession(
                config, store or default_store_path(config, config_path))
        except BaseException:
            sock.close()
            raise
        return _finish_prepare(session, sock, host, token)
    pool, tests = load_session_data(config)
    seed_labels = read_import_file(import_file, list(pool.classes)) if import_file else None
    sock = bind(host, port)
    try:
        store_path = store or default_store_path(config, config_path)
        session = LabelSession(config, pool, tests, store_path, seed_labels=seed_labels)
    except BaseException:
        sock.close()
        raise
    return _finish_prepare(session, sock, host, token)


def _finish_prepare(session: LabelSession, sock: socket.socket, host: str, token: str | None
                    ) -> PreparedServer:
    import uvicorn

    app = create_app(session, token=token,
                     allowed_hosts=list(LOOPBACK_HOSTS) if is_loopback(host) else None)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5))
    return PreparedServer(session, server, sock, url, token)


def serve(config_path: Path | None, host: str | None = None, port: int | None = None,
          store: Path | None = None, import_file: Path | None = None,
          token: str | None = None, config: LabelConfig | None = None) -> int:
    """Run the labeling app until interrupted; every acknowledged answer is already stored."""
    if config is None:
        assert config_path is not None
        config = load_label_config(config_path)
    prepared = prepare_server(config, config_path, host, port, store, import_file, token)
    session = prepared.session
    link = prepared.url + (f"?token={prepared.token}" if prepared.token else "")
    state = session.state()
    print(f"activegen label: {config.name}\n"
          f"  store:  {session.store_path} ({state['answered']} answered, round {state['round']}"
          f"{', finished' if state['finished'] else ''})\n"
          f"  open:   {link}", flush=True)
    if "n_skipped" in state:
        print(f"  images: {len(getattr(session, 'paths', []))} to label, "
              f"{state['audit']['size']} in the audit sample, {state['n_skipped']} unreadable "
              "files skipped" + "".join(f"\n    skipped {s['path']}: {s['reason']}"
                                        for s in state["skipped_files"][:20]), flush=True)
    if prepared.token:
        print(f"  token:  {prepared.token}  (required on every request)", flush=True)
    print("  stop with Ctrl-C; the same command resumes the session", flush=True)
    try:
        prepared.server.run(sockets=[prepared.sock])  # type: ignore[attr-defined]
    finally:
        session.close()
        prepared.sock.close()
    print(f"activegen label: stopped; labels are in {session.store_path}", file=sys.stderr)
    return 0
