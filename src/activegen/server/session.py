"""A labeling session: the engine's ask/tell with a person as the oracle, state in the store.

The session stands on :class:`~activegen.engine.ActiveLearner`: its state is the
:class:`~activegen.server.store.LabelStore` (read through
:class:`~activegen.server.engine_state.LabelStoreState`), each posted answer is committed there
before it is acknowledged (the session's ``tell``), and when the last open query of a round is
answered the engine's ``ask`` fits a learner on every answer and chooses the next round. So
the process may die at any moment:

- session round ``r`` is the engine's round ``r - 1``: chosen by a learner fitted on every
  answer of rounds ``< r``, with the engine's seeds; its queries are stored in one transaction
  before any is served;
- the next round is computed by a background worker (:mod:`activegen.server.worker`), off the
  request path, unless ``labeling.background = false`` (then inside the request that closed
  the round, holding the store lock, as before the worker existed); if the process dies before
  it is stored, opening the session again computes it (identically);
- the learner after a restart is fitted on the same stored answers with the same seed, so it is
  the same learner.

The pool's own labels are never read: the session blanks them on load. The first batch is a
seeded random draw (or, when imported labels exist, the strategy's choice), because a
practitioner's pool has no labels. A held-out test set, when configured, has labels; it gives
the learning curve.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from activegen._device import resolve_device
from activegen.data.dataset import Dataset, float_to_images, images_to_float
from activegen.engine import ActiveLearner, RoundRecord
from activegen.errors import ConfigError
from activegen.models import LEARNERS, Learner
from activegen.oracles.base import ABSTAIN
from activegen.server.config import LabelConfig
from activegen.server.engine_state import LabelStoreState, told_rounds
from activegen.server.stopping_notice import SessionStopping
from activegen.server.store import LabelStore, NewQuery, QueryRow
from activegen.server.worker import RoundWorker
from activegen.strategies import STRATEGIES, PrepareContext, Query, Strategy

log = logging.getLogger(__name__)

LABELER_MAX = 64


class RequestError(Exception):
    """A request the session refuses; ``status`` is the HTTP status the app answers with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def png_bytes(image: np.ndarray) -> bytes:
    """One ``uint8 [H, W, C]`` image as PNG bytes."""
    arr = image[:, :, 0] if image.shape[2] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def blank_labels(pool: Dataset) -> Dataset:
    """The pool with its labels replaced by zeros, so that nothing can read them."""
    return Dataset(pool.X, np.zeros(len(pool), dtype=np.int64), pool.classes, pool.name)


def pool_fingerprint(pool: Dataset) -> str:
    import hashlib

    digest = hashlib.sha256()
    digest.update(str(pool.X.shape).encode())
    digest.update(np.ascontiguousarray(pool.X).tobytes())
    digest.update(json.dumps(list(pool.classes)).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LabelOutcome:
    """What happened to a posted label."""

    status: str  # "recorded" or "already recorded"
    query_id: int
    label: int
    round_closed: bool


class LabelSession:
    """One labeling session over a store (see the module docstring).

    Args:
        config: the session's settings.
        pool: the images to label (their labels are discarded here).
        test_sets: named held-out sets with labels, for the learning curve.
        store_path: the SQLite file (created if absent).
        strategy: a strategy object (default: built from ``config.strategy``); tests pass one.
        seed_labels: ``(pool_index, label)`` pairs to import before anything is asked (on a
            new store they shape the first batch; on an existing one they join the open round).
    """

    def __init__(
        self,
        config: LabelConfig,
        pool: Dataset,
        test_sets: Mapping[str, Dataset],
        store_path: Path,
        strategy: Strategy | None = None,
        seed_labels: list[tuple[int, int]] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.labeling
        self.pool = blank_labels(pool)
        self.classes = list(pool.classes)
        self.n_classes = len(self.classes)
        self.X_pool = self._pool_inputs()
        self.test_sets = {name: (ds.to_float(), ds.y) for name, ds in test_sets.items()}
        self.store_path = Path(store_path)
        self.strategy = strategy or STRATEGIES.build(config.strategy.name, config.strategy.params)
        self.cold_start = (None if config.loop.cold_start is None else STRATEGIES.build(
            config.loop.cold_start.name, config.loop.cold_start.params))
        self.cache_dir = (Path(config.cache_dir) if config.cache_dir
                          else self.store_path.parent / "cache")
        self.make_learner = session_learner_factory(config, self.n_classes)
        #: the learner that chose the open round (None before any answer)
        self.learner: Learner | None = None
        self._learner_round: int | None = None  # the session round self.learner chose
        self.finished = False
        #: bumped under the store lock by every change to the answers (label, undo, import):
        #: a round computed from a snapshot is committed only if nothing changed since
        self._version = 0
        #: bumped by every change other than an answer to an asked query (imports): the
        #: engine kept in memory is told a round only if its queries are exactly those asked
        self._imports = 0
        #: (session round, imports, engine, query): the engine that asked that round's query,
        #: kept so that the round's answers are *told* to it when it closes
        self._asked: tuple[int, int, ActiveLearner, Query] | None = None
        self._closing = False
        self.store = LabelStore(self.store_path)
        self.worker: RoundWorker | None = None
        #: the "you can stop here" criterion (``[stopping]``; None without)
        self.stopping: SessionStopping | None = None
        try:
            self._claim_store()
            if config.stopping is not None:
                self.stopping = SessionStopping(config.stopping, self.X_pool, config.seed,
                                                self.store)
            self.strategy.prepare(PrepareContext(
                pool=self.pool,
                cache_dir=self.cache_dir,
                device=resolve_device(config.device),
                artifact_seed=config.seed,
            ))
            if seed_labels:
                self._check_import(seed_labels)
                with self.store.lock:
                    self.store.import_labels(self.store.current_round(), seed_labels, "import")
            if self.settings.background:
                self.worker = RoundWorker(self._catch_up)
                self.worker.request()  # the first round, or the open round's learner
            else:
                self._catch_up()
        except BaseException:
            self.close()
            raise

    # -- setup ----------------------------------------------------------------------------
    def _pool_inputs(self) -> np.ndarray:
        """What the learner and strategy see of the pool (a subclass may give features)."""
        return self.pool.to_float()

    def query_dict(self, row: QueryRow) -> dict[str, Any]:
        """A query as the API hands it out (a subclass may add the image's file)."""
        return row.as_dict()

    def _claim_store(self) -> None:
        """Stamp a new store with this session; refuse a store of another session."""
        expected = {"config": self.config.fingerprint(), "pool": pool_fingerprint(self.pool)}
        stored = self.store.get_meta("session")
        if stored is None:
            self.store.set_meta("session", json.dumps(expected))
            self.store.set_meta("classes", json.dumps(self.classes))
            self.store.set_meta("config", self.config.model_dump_json())
            return
        previous = json.loads(stored)
        if previous.get("config") != expected["config"]:
            raise ConfigError(
                f"{self.store_path} holds a session with other settings (data, learner, "
                "strategy, seed, batch or budget differ); use another --store to start anew"
            )
        if previous.get("pool") != expected["pool"]:
            raise ConfigError(f"{self.store_path} was made with other pool images")

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the worker (waiting up to ``timeout`` s for a round under way) and the store."""
        with self.store.lock:
            self._closing = True
        if self.worker is not None:
            self.worker.close(timeout)
        self.store.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the worker has nothing left to do (tests, scripts); False on timeout."""
        return True if self.worker is None else self.worker.wait_idle(timeout)

    @property
    def preparing(self) -> bool:
        """Whether the next round is being computed (labelers wait for its batch)."""
        with self.store.lock:
            return not self.finished and told_rounds(self.store) == self.store.current_round()

    # -- the loop: the engine's ask on the stored answers --------------------------------
    def _engine(self) -> ActiveLearner:
        """An engine whose state is the store's closed rounds (read now, under the lock)."""
        engine = ActiveLearner(
            self.X_pool, self.n_classes, self.make_learner, self.strategy,
            seed=self.config.seed, budget=self.config.loop.budget,
            batch_size=self.config.loop.batch,
            test_sets=self.test_sets,
            store=LabelStoreState(self.store, len(self.pool), self.X_pool.shape[1:],
                                  self.pool.image_shape[2]),
            cache_dir=self.cache_dir, on_fitted=self._on_fitted)
        return engine

    def _on_fitted(self, record: RoundRecord, learner: Learner) -> None:
        """The fit of engine round ``m`` chooses session round ``m + 1``: record it."""
        round_ = record.round + 1
        self.store.record_fit(round_, record.n_train, self.store.n_asked(), record.accuracy)
        if self.stopping is not None:
            self.stopping.observe(round_, record.n_train, learner)

    def _catch_up(self) -> None:
        """Bring the session up to date with its store: when the current round is answered,
        compute and store the next one (``ask``); when a round is open but its learner is not
        in memory (after a restart), refit it (``fit``).

        Idempotent, and safe beside requests: the answers are read as a snapshot under the
        store lock, the fit and the choice run without it, and the result is committed under
        the lock only if no answer changed meanwhile (else it computes again). Runs in the
        worker thread, or inline (``labeling.background = false``: the caller holds the lock).
        """
        while True:
            with self.store.lock:
                if self.finished or self._closing:
                    return
                current = self.store.current_round()
                closed = told_rounds(self.store) == current
                if not closed and self._learner_round == current:
                    return  # up to date
                version = self._version
                engine = self._tell_answers(current) if closed else None
                if engine is None:  # nothing asked in memory: the state from the store
                    engine = self._engine()
            next_round = current + 1 if closed else current
            if closed:
                k = self.config.loop.initial if next_round == 1 else self.config.loop.batch
                query = engine.ask(k)
            else:
                engine.fit()
            with self.store.lock:
                if self._closing:
                    return
                if closed and self._version != version:
                    self._asked = None  # told answers that changed: rebuild from the store
                    continue  # an answer was undone or imported meanwhile: compute again
                if closed:
                    if engine.done or len(query) == 0:
                        log.info("the budget is spent or the pool exhausted: finished")
                        self.finished = True
                        self._asked = None
                    else:
                        self._keep_stored_pixels(query)
                        self.store.insert_round(next_round, self._to_new_queries(query))
                        self._asked = (next_round, self._imports, engine, query)
                        log.info("round %d: %d queries stored", next_round, len(query))
                elif self.store.current_round() != current:
                    continue
                self.learner, self._learner_round = engine.learner, next_round

    def _tell_answers(self, round_: int) -> ActiveLearner | None:
        """The engine that asked session round ``round_``, told that round's answers (its
        ``tell``), or None when there is none in memory (a restart, an import since, or a
        round computed again) and the engine must be rebuilt from the store (``load``, which
        gives the same state: the store holds every answer and the pixels shown).
        Call with the store lock held."""
        asked, self._asked = self._asked, None
        if asked is None or asked[0] != round_ or asked[1] != self._imports:
            return None
        _, _, engine, query = asked
        rows = self.store.read(
            "SELECT q.pool_index, l.label FROM queries q JOIN labels l ON l.query_id = q.id "
            "WHERE q.round = ? AND q.source = 'session' ORDER BY q.position", (round_,))
        if len(rows) != len(query):
            return None
        if not query.is_synthesized and [r[0] for r in rows] != [int(i) for i in query.indices]:
            return None
        engine.tell(query, np.asarray([r[1] for r in rows], dtype=np.int64))
        return engine

    @staticmethod
    def _keep_stored_pixels(query: Query) -> None:
        """Synthesized images are stored (and shown) as 8-bit PNGs: the engine keeps those
        pixels too, so a session told its answers trains on what a reopened one reads back."""
        if query.is_synthesized and query.samples is not None:
            query.samples[...] = images_to_float(float_to_images(query.samples))

    def _round_answered(self) -> None:
        """After an answer: if it closed the round, have the next one computed."""
        if self.worker is not None:
            self.worker.request()
        else:
            self._catch_up()  # inline, with the store lock held by the caller

    def _to_new_queries(self, query: Query) -> list[NewQuery]:
        scores = None if query.scores is None else np.asarray(query.scores, dtype=np.float64)
        if not query.is_synthesized:
            idx = np.asarray(query.indices, dtype=np.int64)
            return [NewQuery(kind="pool", pool_index=int(i),
                             score=None if scores is None else float(scores[j]))
                    for j, i in enumerate(idx)]
        assert query.samples is not None
        images = float_to_images(query.samples)
        generator = query.meta.get("generator_id", query.meta.get("generator"))
        out = []
        for j, image in enumerate(images):
            latent = None
            if query.latents is not None:
                buffer = io.BytesIO()
                np.save(buffer, np.asarray(query.latents[j]), allow_pickle=False)
                latent = buffer.getvalue()
            out.append(NewQuery(kind="synth", image=png_bytes(image), latent=latent,
                                generator_id=None if generator is None else str(generator),
                                score=None if scores is None else float(scores[j])))
        return out

    # -- requests -------------------------------------------------------------------------
    @staticmethod
    def check_labeler(labeler: str) -> str:
        if not labeler or len(labeler) > LABELER_MAX or not labeler.isprintable():
            raise RequestError(400, f"labeler must be 1 to {LABELER_MAX} printable characters")
        return labeler

    def batch(self, labeler: str) -> list[QueryRow]:
        """The queries this labeler should answer now (a lease; see :meth:`LabelStore.assign`)."""
        self.check_labeler(labeler)
        with self.store.lock:
            if self.finished:
                return []
            limit = self.settings.lease_size or max(self.config.loop.batch,
                                                    self.config.loop.initial)
            return self.store.assign(labeler, self.store.current_round(), limit,
                                     self.settings.lease_seconds)

    def label(self, query_id: int, label: int, labeler: str) -> LabelOutcome:
        """Record one answer (``-1`` = can't tell), committed before this returns."""
        self.check_labeler(labeler)
        if label != ABSTAIN and not 0 <= label < self.n_classes:
            raise RequestError(422, f"label {label} is not a class: use 0..{self.n_classes - 1} "
                                    f"({', '.join(self.classes)}) or -1 for can't tell")
        with self.store.lock:
            outcome, row, stored = self.store.record_label(query_id, label, labeler,
                                                           self.settings.lease_seconds)
            if outcome == "unknown":
                raise RequestError(404, f"no query {query_id} in this session")
            if outcome == "conflict":
                raise RequestError(409, f"query {query_id} is already answered with "
                                        f"{stored}; undo it first to change it")
            if outcome == "leased":
                raise RequestError(409, f"query {query_id} is held by another labeler")
            assert row is not None
            current = self.store.current_round()
            closed = row.round == current and self.store.open_count(current) == 0
            if outcome == "recorded":
                self._version += 1
                if closed:
                    self._round_answered()
        return LabelOutcome("recorded" if outcome == "recorded" else "already recorded",
                            query_id, label, closed)

    def undo(self, labeler: str) -> QueryRow:
        """Take back this labeler's last answer of the open round."""
        self.check_labeler(labeler)
        with self.store.lock:
            if self.finished:
                raise RequestError(409, "the session is finished; answers are final")
            if told_rounds(self.store) == self.store.current_round():
                raise RequestError(409, "the round is answered and the next one is being "
                                        "prepared; answers of finished rounds are final")
            row = self.store.undo_last(labeler, self.store.current_round())
            if row is not None:
                self._version += 1  # a round being computed from this answer is dropped
        if row is None:
            raise RequestError(409, "nothing to undo: no answer of yours in the open round "
                                    "(answers of finished rounds are final)")
        return row

    def import_labels(self, items: list[tuple[int, int]], labeler: str = "import"
                      ) -> dict[str, int]:
        """Record labels from outside (validated by the caller), then advance if that closed
        the round."""
        self._check_import(items)
        with self.store.lock:
            counts = self.store.import_labels(self.store.current_round(), items, labeler)
            self._version += 1
            self._imports += 1
            if told_rounds(self.store) == self.store.current_round():
                self._round_answered()
        return counts

    def _check_import(self, items: list[tuple[int, int]]) -> None:
        for pool_index, label in items:
            if not 0 <= pool_index < len(self.pool):
                raise RequestError(422, f"pool_index {pool_index} is outside the pool "
                                        f"(0..{len(self.pool) - 1})")
            if label != ABSTAIN and not 0 <= label < self.n_classes:
                raise RequestError(422, f"label {label} is not a class")

    def image_png(self, query_id: int) -> bytes:
        source = self.store.image_source(query_id)
        if source is None:
            raise RequestError(404, f"no query {query_id} in this session")
        pool_index, image = source
        if image is not None:
            return image
        assert pool_index is not None
        return png_bytes(self.pool.X[pool_index])

    def state(self) -> dict[str, Any]:
        """What the page shows: progress, budget, the learning curve."""
        with self.store.lock:
            counts = self.store.counts("session")
            imported = self.store.counts("import")
            return {
                "name": self.config.name,
                "classes": self.classes,
                "round": self.store.current_round(),
                "budget": self.config.loop.budget,
                "asked": self.store.n_asked(),
                "answered": counts["labeled"] + counts["abstained"],
                "labeled": counts["labeled"],
                "abstained": counts["abstained"],
                "imported": imported["labeled"] + imported["abstained"],
                "open": counts["pending"] + counts["assigned"],
                "finished": self.finished,
                "preparing": self.preparing,
                "worker_error": None if self.worker is None else self.worker.error,
                "image_shape": list(self.pool.image_shape),
                "test_sets": sorted(self.test_sets),
                "curve": self.store.fits(),
                "time": time.time(),
                **({} if self.stopping is None else {"stopping": self.stopping.state()}),
            }


def session_learner_factory(config: LabelConfig, n_classes: int) -> Callable[[int], Learner]:
    """Fresh learners of the session, on the session's resolved device (as in a run)."""
    from activegen._settings import BuildContext

    name, params = config.learner.name, config.learner.params
    device = resolve_device(config.device)

    def make(seed: int) -> Learner:
        return LEARNERS.build(name, params, BuildContext(n_classes=n_classes, seed=seed,
                                                         device=device))

    return make


def load_session_data(config: LabelConfig) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool and the held-out test sets of a labeling session, checked to match."""
    from activegen.experiments.runner import load_pool_and_tests

    pool, tests = load_pool_and_tests(config.data, config.test_sets)
    if config.loop.initial > len(pool):
        raise ConfigError(f"loop.initial ({config.loop.initial}) exceeds the pool "
                          f"({len(pool)} images)")
    return pool, tests
