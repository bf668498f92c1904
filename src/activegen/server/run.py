"""What ``activegen label`` and ``activegen label-studio`` run: open the session
(:func:`~activegen.server.opening.open_session`), then serve the web app over it or sync it
with a Label Studio project, until interrupted."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activegen.errors import ActivegenError, ConfigError
from activegen.server.config import LabelConfig, load_label_config
from activegen.server.core.session import LabelSession
from activegen.server.interop.label_studio import (
    LabelStudioClient,
    LabelStudioSync,
    SyncReport,
    check_interval,
)
from activegen.server.opening import open_session
from activegen.server.web.app import create_app
from activegen.server.web.middleware import LOOPBACK_HOSTS, is_loopback


@dataclass
class PreparedServer:
    """A session, its app and a bound socket, ready to serve."""

    session: LabelSession
    server: Any  # uvicorn.Server
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
    """Open (or resume) the session and bind the socket; nothing served yet."""
    import uvicorn

    host = host or config.labeling.host
    port = config.labeling.port if port is None else port
    token = token or os.environ.get("ACTIVEGEN_TOKEN") or None
    if not is_loopback(host) and token is None:
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise ConfigError("the token must be at least 16 characters")
    sock = bind(host, port)
    try:
        session = open_session(config, store, config_path=config_path,
                               import_file=import_file)
    except BaseException:
        sock.close()
        raise
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
    print(startup_message(prepared), flush=True)
    try:
        prepared.server.run(sockets=[prepared.sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a session is stopped (uvicorn re-raises it once shut down)
    finally:
        session.close()
        prepared.sock.close()
    print(f"activegen label: stopped; labels are in {session.store_path}", file=sys.stderr)
    return 0


def startup_message(prepared: PreparedServer) -> str:
    """What ``activegen label`` prints when it starts: the store and where it stands, the
    address, a folder's images, the budget and the audit (on top of it)."""
    session = prepared.session
    state = session.state()
    link = prepared.url + (f"?token={prepared.token}" if prepared.token else "")
    lines = [f"activegen label: {session.config.name}",
             f"  store:  {session.store_path} ({state['answered']} answered, round "
             f"{state['round']}{', finished' if state['finished'] else ''})",
             f"  open:   {link}"]
    if session.files is not None:
        skipped = state.get("skipped_files", [])
        audited = 0 if session.audit is None else len(session.audit.files)
        audit = (f"{plural(audited, 'image')} in the audit sample (labeled on top of the "
                 "budget)" if audited else "no audit sample (no accuracy estimate)")
        lines.append(f"  images: {len(session.files)} to label, {audit}, "
                     f"{plural(len(skipped), 'unreadable file')} skipped"
                     + "".join(f"\n    skipped {s['path']}: {s['reason']}"
                               for s in skipped[:20]))
    lines.append(f"  budget: {state['answered']} of {state['budget']} answered"
                 + (f"; audit: {state['audit']['answered']} of {state['audit']['size']}"
                    if "audit" in state else "")
                 + ("; finished (a larger --budget on this store continues it)"
                    if state["finished"] else ""))
    preparation = session.features_preparation
    if preparation is not None:
        estimate = preparation.estimate_seconds
        lines.append(f"  features: {preparation.what}, learned on the pool in the background"
                     + ("" if estimate is None else
                        f" (about {max(1, round(estimate / 60))} min on one CPU core)")
                     + "; label the first batch meanwhile, the next is chosen on them")
    if prepared.token:
        lines.append(f"  token:  {prepared.token}  (required on every request)")
    lines.append("  stop with Ctrl-C; the same command resumes the session")
    return "\n".join(lines)


def plural(n: int, noun: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def sync_label_studio(config: LabelConfig, config_path: Path | None, store: Path | None,
                      url: str, token: str, project_id: int | None, interval: float,
                      once: bool) -> int:
    """What ``activegen label-studio`` runs: open the session, then sync until it is done."""
    if not once:
        check_interval(interval)
    client = LabelStudioClient(url, token)
    session = open_session(config, store, config_path=config_path)
    try:
        sync = LabelStudioSync(session, client, project_id)
        print(f"activegen label-studio: {config.name}\n  store:   {session.store_path}\n"
              f"  project: {client.url}/projects/{sync.project_id}", flush=True)

        def show(r: SyncReport) -> None:
            print(f"  round {r.round}: {r.pulled} answers pulled, {r.pushed} tasks pushed"
                  + (f", {r.conflicts} conflicting annotations left as stored"
                     if r.conflicts else "") + (" (finished)" if r.finished else "")
                  + "".join(f"\n    not read: {why}" for why in r.unreadable), flush=True)

        if once:
            show(sync.sync())
        else:
            sync.run(interval, report=show)
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    print(f"activegen label-studio: stopped; labels are in {session.store_path}", flush=True)
    return 0
