"""The one owner of a labeling session's engine.

A session has one :class:`~activegen.engine.ActiveLearner`, built when it opens from the
store's events (:class:`~activegen.server.core.events.StoredEvents`), and one
:class:`EngineWorker` that is the only code calling it. Requests never touch the engine: they
write answers and imports into the store, each with its event in the same transaction, and
ask the worker to catch up. One :meth:`EngineWorker.step`:

1. applies the events stored since the last step, in order: ``taught`` → ``engine.teach``,
   ``told`` → ``engine.tell`` of the engine's open query;
2. when no round is open and the session is not finished, lets the engine ``ask`` (a fit on
   every answer, then the strategy's choice, or the cold start's while nothing is labeled)
   and stores the round with its ``asked`` event in one transaction, or the ``finished``
   event when the budget is spent or the pool exhausted.

The fit and the choice run without the store lock; the round is stored under it only if no
event arrived meanwhile (an import during the fit): otherwise the query was chosen without
those labels, so the worker drops it, rebuilds the engine from the store and asks again. Live
application and a reopened session's replay are the same fold of the same events, so a
session killed at any moment and reopened continues as if it never stopped.

``labeling.background = true`` runs the steps in one daemon thread (the request that closed a
round returns as soon as its answer is committed); ``false`` runs each step inline, in the
request that asked for it, holding the store lock (every other request waits).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from activegen.data.dataset import float_to_images, images_to_float
from activegen.engine import ActiveLearner, Event
from activegen.errors import RunFinished
from activegen.models.base import Learner
from activegen.server.core.events import StoredEvents
from activegen.server.core.png import png_bytes
from activegen.server.core.store import LabelStore, NewQuery
from activegen.strategies import Query

log = logging.getLogger(__name__)

#: Builds the session's engine over its stored events.
EngineFactory = Callable[[StoredEvents], ActiveLearner]


class EngineWorker:
    """Owns the session's engine and brings it up to the store (see the module docstring).

    Args:
        store: the session's store.
        build_engine: makes the engine whose ``store`` is the given :class:`StoredEvents`.
        first_batch: queries of round 0 (``loop.initial``).
        batch: queries of every later round (``loop.batch``).
        background: run the steps in a thread (else inline, in :meth:`request`).
        hold: while it returns True no round but the first is asked (the session's features
            are still being prepared: the person labels the first batch meanwhile, and the
            next round is chosen on the features once :meth:`rebuild` is called).
    """

    def __init__(self, store: LabelStore, build_engine: EngineFactory, first_batch: int,
                 batch: int, background: bool = True,
                 name: str = "activegen-engine-worker",
                 hold: Callable[[], bool] | None = None) -> None:
        self.store = store
        self._build_engine = build_engine
        self.first_batch = first_batch
        self.batch = batch
        self._hold = hold
        self._stale = False
        self.engine, self.seq = self._engine_from_store()
        #: the newest fitted learner: the one that chose the open round (or, after a restart,
        #: its refit); None before the first fit
        self.learner: Learner | None = None
        #: the last step's failure (``"Type: message"``), None after a step that succeeded
        self.error: str | None = None
        #: seconds the last round took to prepare (applying its answers, the fit and the
        #: choice), None before one: the page tells a waiting person what to expect
        self.round_seconds: float | None = None
        self._cond = threading.Condition()
        self._pending = False
        self._running = False
        self._closing = False
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def rebuild(self) -> None:
        """Build the engine anew from the store at the next step (what the learner sees of
        the pool changed: the features it waited for are ready), then take that step."""
        with self._cond:
            self._stale = True
        self.request()

    def _engine_from_store(self) -> tuple[ActiveLearner, int]:
        events = StoredEvents(self.store)
        engine = self._build_engine(events)
        return engine, events.seq

    # -- scheduling -----------------------------------------------------------------------
    def request(self) -> None:
        """Ask for one step: at once in the background thread, or here, inline."""
        if self._thread is None:
            with self.store.lock:
                self._step_reporting()
            return
        with self._cond:
            self._pending = True
            self._cond.notify_all()

    @property
    def busy(self) -> bool:
        """Whether a step is asked for or under way."""
        with self._cond:
            return self._pending or self._running

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no step is asked for or under way; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._running), timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking requests and wait up to ``timeout`` seconds for a step under way (the
        thread is a daemon: a fit still going when the process exits is simply dropped)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if self._closing:
                    return
                self._pending, self._running = False, True
            try:
                self._step_reporting()
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _step_reporting(self) -> None:
        """One step; a failure is logged and kept in :attr:`error` (the answers are stored,
        and the next request or a restart tries again)."""
        try:
            self.step()
            self.error = None
        except Exception as exc:
            with self._cond:
                closing = self._closing
            if not closing:
                log.exception("preparing the next round failed")
                self.error = f"{type(exc).__name__}: {exc}"

    @property
    def closing(self) -> bool:
        with self._cond:
            return self._closing

    # -- the step -------------------------------------------------------------------------
    def step(self) -> None:
        """Apply the new events, then ask and store the next round if none is open."""
        started = time.perf_counter()
        with self._cond:
            stale, self._stale = self._stale, False
        if stale:
            self.engine, self.seq = self._engine_from_store()
            self.learner = None
        while True:
            if self.closing:
                return
            with self.store.lock:
                new = self.store.events(after=self.seq)
            for seq, event in new:
                self._apply(event)
                self.seq = seq
            engine = self.engine
            if engine.done:
                self.learner = engine.learner or self.learner
                return
            if engine.state.pending is not None:  # a round is open: its learner, once
                if self.learner is None:
                    engine.fit()
                    self.learner = engine.learner
                return
            round_ = engine.state.round
            if round_ > 0 and self._hold is not None and self._hold():
                return  # rebuild() brings the features and asks this round
            try:
                query = engine.ask(self.first_batch if round_ == 0 else self.batch)
            except RunFinished:
                query = None  # the engine finished: its finished event is stored below
            with self.store.lock:
                if self.closing:
                    return
                if self.store.last_seq() != self.seq:
                    # labels arrived while the round was chosen without them
                    log.info("round %d: new labels arrived meanwhile; choosing again", round_)
                    self.engine, self.seq = self._engine_from_store()
                    continue
                if engine.done:
                    reason = engine.events[-1].reason
                    self.seq = self.store.finish(round_, reason)
                    log.info("the session finished (%s)", reason)
                else:
                    assert engine.state.pending is not None and query is not None
                    keep_stored_pixels(engine.state.pending)
                    self.seq = self.store.insert_round(round_, stored_queries(query))
                    self.round_seconds = time.perf_counter() - started
                    log.info("round %d: %d queries stored", round_, len(query))
            self.learner = engine.learner or self.learner
            return

    def _apply(self, event: Event) -> None:
        engine = self.engine
        if event.kind == "taught":
            assert event.labels is not None
            engine.teach(event.indices, event.labels, charged=event.charged)
        elif event.kind == "told":
            assert event.labels is not None
            query = engine.ask()  # the open round's query
            engine.fit()  # the round's own fit (kept from its ask; after a reopening, now)
            engine.tell(query, event.labels)
        else:  # asked and finished events are this worker's own, applied as it wrote them
            raise RuntimeError(f"a {event.kind!r} event the worker did not write "
                               f"(round {event.round})")


def keep_stored_pixels(asked: Event) -> None:
    """Synthesized images are stored (and shown) as 8-bit PNGs: the engine's ``asked`` event
    keeps those pixels too (in place), so the engine told their answers trains on exactly what
    a reopened session reads back from the store."""
    if asked.samples is not None:
        asked.samples[...] = images_to_float(float_to_images(asked.samples))


def stored_queries(query: Query) -> list[NewQuery]:
    """The rows of a round's queries: pool indices, or PNGs with latents and generator."""
    scores = None if query.scores is None else np.asarray(query.scores, dtype=np.float64)
    if query.samples is None:
        return [NewQuery(kind="pool", pool_index=int(i),
                         score=None if scores is None else float(scores[j]))
                for j, i in enumerate(np.asarray(query.indices, dtype=np.int64))]
    generator = query.meta.get("generator_id", query.meta.get("generator"))
    out = []
    for j, image in enumerate(float_to_images(query.samples)):
        latent = None
        if query.latents is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(query.latents[j]), allow_pickle=False)
            latent = buffer.getvalue()
        out.append(NewQuery(kind="synth", image=png_bytes(image), latent=latent,
                            generator_id=None if generator is None else str(generator),
                            score=None if scores is None else float(scores[j])))
    return out
