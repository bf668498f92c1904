"""Features that are still being learned while a session already labels.

A source that trains on the pool (``self-supervised``: minutes on a CPU) would keep a person
waiting before the first image. Instead the session opens on what it has at once (the pixels)
and a :class:`FeaturePreparation` trains in a background thread: the first batch (random, or
the cold start's choice) is labeled meanwhile, ``/api/state`` says ``preparing features:
epoch 3 of 40`` with the time so far, and the next round waits for the features and is chosen
on them. An encoder already in the cache is loaded before the session opens, so a reopened
session never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: ``(epoch, epochs, loss)`` after each epoch of the training
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class PreparedFeatures:
    """What the session swaps in once the features are ready.

    Attributes:
        inputs: the pool's feature rows ``[N, d]``.
        test_sets: the held-out sets in the same features (a dataset session's).
        audit_features: the audit sample's feature rows (an image folder's), None without.
        exporter: the model export on these features (None: nothing to export).
        info: shown in the session's state (replaces the same keys).
    """

    inputs: np.ndarray
    test_sets: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    audit_features: np.ndarray | None = None
    exporter: Any = None
    info: Mapping[str, Any] = field(default_factory=dict)


class FeaturePreparation:
    """Runs ``prepare(progress)`` once in a daemon thread and reports how far it is.

    Args:
        what: the source, as messages name it (``self-supervised``).
        epochs: the training's epochs (for the first message, before any epoch ends).
        prepare: trains and computes the :class:`PreparedFeatures`, calling ``progress``
            after each epoch.
        estimate_seconds: the expected training time, named before it starts (None: unknown).
    """

    def __init__(self, what: str, epochs: int,
                 prepare: Callable[[Progress], PreparedFeatures],
                 estimate_seconds: float | None = None) -> None:
        self.what = what
        self.epochs = epochs
        self.estimate_seconds = estimate_seconds
        self._prepare = prepare
        self._lock = threading.Lock()
        self._epoch = 0
        self._loss: float | None = None
        self._started: float | None = None
        self._ended: float | None = None
        self._error: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_ready: Callable[[PreparedFeatures], None],
              on_failed: Callable[[str], None]) -> None:
        """Start the training; ``on_ready`` gets the features, ``on_failed`` the error (the
        session then goes on without them)."""
        self._started = time.monotonic()
        log.info("preparing %s features in the background (%d epochs%s); the first batch "
                 "can be labeled meanwhile", self.what, self.epochs,
                 "" if self.estimate_seconds is None
                 else f", about {self.estimate_seconds / 60:.0f} min")

        def run() -> None:
            try:
                prepared = self._prepare(self._progress)
            except Exception as exc:  # reported on the page; the session goes on
                log.exception("preparing the %s features failed", self.what)
                with self._lock:
                    self._error = f"{type(exc).__name__}: {exc}"
                    self._ended = time.monotonic()
                self._done.set()
                on_failed(self._error)
                return
            with self._lock:
                self._ended = time.monotonic()
            on_ready(prepared)
            self._done.set()

        self._thread = threading.Thread(target=run, name="activegen-features", daemon=True)
        self._thread.start()

    def _progress(self, epoch: int, epochs: int, loss: float) -> None:
        with self._lock:
            self._epoch, self.epochs, self._loss = epoch, epochs, float(loss)

    @property
    def pending(self) -> bool:
        """Whether the features are not ready yet (and have not failed)."""
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the preparation ended; False if ``timeout`` passed first."""
        return self._done.wait(timeout)

    def state(self) -> dict[str, Any]:
        """``{"source", "status", "epoch", "epochs", "seconds", "message", ...}`` for the page:
        status ``training``, ``ready`` or ``failed``."""
        with self._lock:
            epoch, epochs, loss, error = self._epoch, self.epochs, self._loss, self._error
            end = self._ended if self._ended is not None else time.monotonic()
            seconds = 0.0 if self._started is None else end - self._started
        status = "failed" if error else ("ready" if self._done.is_set() else "training")
        if status == "training" and not epochs:  # a training that reports no epochs
            message = f"preparing features: training the {self.what} ({_duration(seconds)} so far)"
        elif status == "training":
            message = f"preparing features: epoch {epoch} of {epochs}"
            if epoch:
                left = seconds / epoch * (epochs - epoch)
                message += f" (about {_duration(left)} left)"
            elif self.estimate_seconds is not None:
                message += f" (about {_duration(self.estimate_seconds)} in all)"
        elif status == "ready":
            message = f"{self.what} features ready (trained in {_duration(seconds)})"
        else:
            message = f"the {self.what} features failed ({error}); going on without them"
        return {"source": self.what, "status": status, "epoch": epoch, "epochs": epochs,
                "loss": loss, "seconds": round(seconds, 1), "message": message,
                "error": error}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
