"""The labeling session's background worker: the next round is computed off the request path.

A round closes when its last query is answered; fitting the learner and running the strategy
on the new answers can take seconds (a ResNet: minutes). :class:`RoundWorker` runs that job in
one daemon thread, so the ``POST /api/label`` that closed the round returns as soon as its
answer is committed, and every other request goes on being served.

Lock discipline: the worker holds no lock of its own while it computes. The job it runs (the
session's ``_catch_up``) takes the store lock only to read a snapshot of the answers and,
at the end, to commit the new round in one transaction, after checking that no answer changed
in between (else it computes again). A crash at any moment loses nothing: answers were
committed before they were acknowledged, and a reopened session computes the same round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class RoundWorker:
    """Runs ``job`` in a background thread each time :meth:`request` is called (requests that
    arrive while it runs fold into one more run)."""

    def __init__(self, job: Callable[[], None], name: str = "activegen-round-worker") -> None:
        self._job = job
        self._cond = threading.Condition()
        self._pending = False
        self._running = False
        self._stopping = False
        #: the last job's failure (``"Type: message"``), None after a job that succeeded
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for one run of the job (returns at once)."""
        with self._cond:
            self._pending = True
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        """Whether a run is asked for or under way."""
        with self._cond:
            return self._pending or self._running

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no run is asked for or under way; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._running), timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking requests and wait up to ``timeout`` seconds for a run under way (the
        thread is a daemon: a fit still going when the process exits is simply dropped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                self._pending, self._running = False, True
            try:
                self._job()
                self.error = None
            except Exception as exc:  # reported on the page, logged in full
                with self._cond:
                    stopping = self._stopping
                if not stopping:
                    log.exception("preparing the next round failed")
                    self.error = f"{type(exc).__name__}: {exc}"
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
