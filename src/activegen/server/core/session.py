"""A labeling session: the engine's ask/tell with a person as the oracle, its history in the
store.

A session holds one :class:`~activegen.server.core.store.LabelStore`, whose events are the
session's history, and one :class:`~activegen.server.core.worker.EngineWorker`, the only code
that calls the session's :class:`~activegen.engine.ActiveLearner`. The requests here (lease a
batch, answer, undo, import) only write the store, each change with its event in one
transaction, committed before the request returns; the worker then folds the new events into
the engine and, when a round is told, asks the next one. So the process may die at any
moment:

- round ``r`` (the engine's round ``r``, from 0) is chosen by a learner fitted on every answer
  of the rounds before it, with the engine's seeds; its queries and its ``asked`` event are
  stored in one transaction before any is served;
- round 0 is the cold start's choice (``loop.cold_start``: TypiClust, ProbCover, core-set on
  features of their own) or a seeded random draw, because a practitioner's pool has no labels;
  with labels imported first it is the strategy's choice;
- a reopened session folds the same events with the same seeds: the same state, the same
  learner, the same next round.

The pool's own labels are never read: the session blanks them on load. A held-out test set,
when configured, has labels; it gives the learning curve (the store's ``fits``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activegen._device import resolve_device
from activegen._settings import BuildContext
from activegen.data.dataset import Dataset
from activegen.engine import ActiveLearner, RoundRecord
from activegen.errors import ConfigError
from activegen.models import LEARNERS, Learner
from activegen.models.capabilities import Probabilistic, has_capability
from activegen.oracles.base import ABSTAIN
from activegen.server.config import LabelConfig
from activegen.server.core.audit import Audit, audit_due
from activegen.server.core.errors import Conflict, InvalidAnswer, InvalidImport, NotFound
from activegen.server.core.events import StoredEvents
from activegen.server.core.labeler import check_labeler
from activegen.server.core.png import png_bytes
from activegen.server.core.pool import ModelExporter, SessionPool
from activegen.server.core.preparation import PreparedFeatures
from activegen.server.core.schema import FILES_KEY, MIGRATED_KEY, POOL_LAYOUT_KEY
from activegen.server.core.stopping_notice import SessionStopping
from activegen.server.core.store import LabelStore, QueryRow
from activegen.server.core.worker import EngineWorker
from activegen.strategies import STRATEGIES, PrepareContext, Strategy

log = logging.getLogger(__name__)


def blank_labels(pool: Dataset) -> Dataset:
    """The pool with its labels replaced by zeros, so that nothing can read them."""
    return Dataset(pool.X, np.zeros(len(pool), dtype=np.int64), pool.classes, pool.name)


def pool_fingerprint(pool: Dataset, n: int | None = None) -> str:
    """The fingerprint of the pool's images (its first ``n``, if given) and classes."""
    X = pool.X if n is None else pool.X[:n]
    digest = hashlib.sha256()
    digest.update(str(X.shape).encode())
    digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(json.dumps(list(pool.classes)).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LabelOutcome:
    """What happened to a posted label."""

    status: str  # "recorded" or "already recorded"
    query_id: int
    label: int
    round_closed: bool


@dataclass(frozen=True)
class Batch:
    """A labeler's lease and where the session stands, read in one snapshot."""

    round: int
    finished: bool
    preparing: bool
    queries: list[QueryRow]


class LabelSession:
    """One labeling session over a store (see the module docstring); open one with
    :func:`activegen.server.opening.open_session`.

    Args:
        config: the session's settings.
        pool: what the session labels (its labels are discarded here).
        store_path: the SQLite file (created if absent).
        strategy: a strategy object (default: built from ``config.strategy``); tests pass one.
        seed_labels: ``(pool_index, label)`` pairs to import before anything is asked (on a
            new store they shape the first batch; on an existing one they join the open round),
            after the pool's own known labels.
    """

    def __init__(
        self,
        config: LabelConfig,
        pool: SessionPool,
        store_path: Path,
        strategy: Strategy | None = None,
        seed_labels: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.labeling
        self.pool = blank_labels(pool.images)
        self.classes = list(pool.images.classes)
        self.n_classes = len(self.classes)
        self.X_pool = np.asarray(pool.inputs, dtype=np.float32)
        self.test_sets = dict(pool.test_sets)
        #: each pool image's file (an image folder's), None without files
        self.files: list[str] | None = None if pool.files is None else list(pool.files)
        #: the model export of the pool's source, None when there is nothing to export
        self.exporter: ModelExporter | None = pool.exporter
        self.info = dict(pool.info)
        self._picture = pool.picture
        self._layout = pool.layout
        #: features still being learned on the pool (None: the inputs are final)
        self.features_preparation = pool.preparing
        self._awaiting_features = pool.preparing is not None
        self.store_path = Path(store_path)
        device = resolve_device(config.device)
        self.strategy = strategy or STRATEGIES.build(
            config.strategy.name, config.strategy.params, BuildContext(device=device))
        cold = config.strategy.first_batch(config.loop.cold_start)
        self.cold_start = None if cold is None else STRATEGIES.build(
            cold.name, cold.params, BuildContext(device=device))
        self.cache_dir = (Path(config.cache_dir) if config.cache_dir
                          else self.store_path.parent / "cache")
        self.make_learner = session_learner_factory(config, self.n_classes)
        self.store = LabelStore(self.store_path)
        self.worker: EngineWorker | None = None
        #: the audit sample (None without one)
        self.audit: Audit | None = None
        #: the "you can stop here" criterion (``[stopping]``; None without)
        self.stopping: SessionStopping | None = None
        #: round and labels of the newest fit (the audit's estimate is measured on it)
        self._fitted: tuple[int, int] = (0, 0)
        try:
            self._claim_store()
            self.store.check_rows(len(self.pool), self.n_classes)
            if pool.audit is not None:
                self.audit = Audit(pool.audit, self.store, self.n_classes)
            if config.stopping is not None:
                self.stopping = SessionStopping(config.stopping, self.X_pool, config.seed,
                                                self.store)
            context = PrepareContext(pool=self.pool, cache_dir=self.cache_dir, device=device,
                                     artifact_seed=config.seed)
            for part in (self.strategy, self.cold_start):
                if part is not None:
                    part.prepare(context)
            known = [*pool.known, *(seed_labels or ())]
            if known:
                self._check_import(known)
                self.store.import_labels(known, "import")
            self.worker = EngineWorker(self.store, self._engine, config.loop.initial,
                                       config.loop.batch, background=self.settings.background,
                                       hold=lambda: self._awaiting_features)
            self.worker.request()  # the first round, or the open round's learner
            if self.features_preparation is not None:
                self.features_preparation.start(self._features_ready, self._features_failed)
        except BaseException:
            self.close()
            raise

    # -- setup ----------------------------------------------------------------------------
    def _claim_store(self) -> None:
        """Stamp a new store with this session; refuse a store of another session. A pool
        that grew (an image folder with new files, appended by its layout) keeps its store:
        the images the store has seen are still the first ones, unchanged."""
        expected = {"config": self.config.fingerprint(), "pool": pool_fingerprint(self.pool),
                    "n_pool": len(self.pool)}
        stored = self.store.get_meta("session")
        if stored is None:
            self.store.set_meta("session", json.dumps(expected))
            self.store.set_meta("classes", json.dumps(self.classes))
            self.store.set_meta("config", self.config.model_dump_json())
            self._keep_files()
            self._stamp_layout()
            return
        try:
            previous = json.loads(stored)
            if not isinstance(previous, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):
            raise ConfigError(f"{self.store_path}: its session record cannot be read; open "
                              "another --store (the answers stay exportable with "
                              f"'activegen label-export {self.store_path}')") from None
        if (self.store.get_meta(MIGRATED_KEY) is not None
                and previous.get("pool") == expected["pool"]):
            self._claim_migrated_store(expected)
            return
        if previous.get("pool") != expected["pool"]:
            seen = previous.get("n_pool")
            if not (isinstance(seen, int) and 0 < seen < len(self.pool)
                    and pool_fingerprint(self.pool, seen) == previous.get("pool")):
                raise ConfigError(
                    f"{self.store_path} was made with other pool images (its pool's "
                    f"{seen if isinstance(seen, int) else 'first'} images differ from these "
                    f"{len(self.pool)}); open another --store to label these")
            log.info("%s: the pool grew from %d to %d images", self.store_path, seen,
                     len(self.pool))
        if previous.get("config") != expected["config"]:
            differences = self._differences()
            if differences is None or differences:
                raise ConfigError(
                    f"{self.store_path} holds a session with other settings ("
                    + ("; ".join(differences) if differences else
                       "data, learner, strategy, seed or loop differ")
                    + "); use another --store to start anew (a larger loop.budget is not "
                    "another session: it continues this one)")
        if previous != expected:
            # a pool that grew, or the same decisive settings hashed by an earlier version
            # (one that counted the budget in): stamp the store with this session
            self.store.set_meta("session", json.dumps(expected))
        self._adopt_budget()
        self._keep_files()
        self._stamp_layout()

    def _keep_files(self) -> None:
        """The pool's files in the store, so that an export read from the store alone (``activegen
        label-export``) names each image's file as the page's does."""
        if self.files is not None and self.store.get_meta(FILES_KEY) != json.dumps(self.files):
            self.store.set_meta(FILES_KEY, json.dumps(self.files))

    def _stamp_layout(self) -> None:
        """The pool's layout in the store, so that a folder that grows keeps its pool order."""
        if self._layout is not None:
            text = json.dumps(self._layout)
            if self.store.get_meta(POOL_LAYOUT_KEY) != text:
                self.store.set_meta(POOL_LAYOUT_KEY, text)

    def _differences(self) -> list[str] | None:
        """The decisive settings of the stored session that differ from this one's, as
        ``key: stored there, given here``; None when the stored settings cannot be read."""
        try:
            stored = LabelConfig.model_validate_json(self.store.get_meta("config") or "")
        except ValueError:
            return None
        there, here = _flat(stored.decisive()), _flat(self.config.decisive())
        return [f"{key} is {json.dumps(there.get(key))} there, {json.dumps(here.get(key))} "
                "here" for key in sorted(set(there) | set(here))
                if there.get(key) != here.get(key)]

    def _adopt_budget(self) -> None:
        """Another budget on the same store: keep it with the stored settings, and continue a
        session its old budget ended (a lower one ends it at the next round)."""
        try:
            stored = json.loads(self.store.get_meta("config") or "{}")
        except (ValueError, RecursionError):
            stored = None
        loop = stored.get("loop") if isinstance(stored, dict) else None
        before = loop.get("budget") if isinstance(loop, dict) else None
        if before == self.config.loop.budget:
            return
        self.store.set_meta("config", self.config.model_dump_json())
        reopened = self.store.reopen()
        log.info("%s: budget %s -> %d%s", self.store_path, before, self.config.loop.budget,
                 "; the finished session continues" if reopened else "")

    def _claim_migrated_store(self, expected: dict[str, str]) -> None:
        """A store migrated from version 1, opened the first time since: its fingerprint was
        hashed by that version, so its settings are compared by what both versions name alike
        (the data, the seed, the learner's and the strategy's names, the batch sizes and the
        budget), and the store is stamped with this session's fingerprint."""
        old = json.loads(self.store.get_meta("config") or "{}")
        labeling, config = old.get("labeling") or {}, self.config
        data = config.data.model_dump(mode="json")
        same = (old.get("seed") == config.seed
                and all(data.get(k) == v for k, v in (old.get("data") or {}).items())
                and (old.get("learner") or {}).get("name") == config.learner.name
                and (old.get("strategy") or {}).get("name") == config.strategy.name
                and labeling.get("batch") == config.loop.batch
                and labeling.get("budget") == config.loop.budget
                and (labeling.get("initial") or labeling.get("batch")) == config.loop.initial)
        if not same:
            raise ConfigError(
                f"{self.store_path} (a version-1 store) holds a session with other settings "
                "(data, seed, learner, strategy, batch or budget differ); use another --store "
                "to start anew")
        with self.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('session', ?)",
                         (json.dumps(expected),))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)",
                         (self.config.model_dump_json(),))
            conn.execute("DELETE FROM meta WHERE key = ?", (MIGRATED_KEY,))

    def _engine(self, events: StoredEvents) -> ActiveLearner:
        """The session's engine over its stored events (the worker builds it, and rebuilds
        it when a round it chose is dropped)."""
        loop = self.config.loop
        return ActiveLearner(
            self.X_pool, self.n_classes, self.make_learner, self.strategy,
            seed=self.config.seed, cold_start=self.cold_start, budget=loop.budget,
            batch_size=loop.batch, abstain_costs_budget=loop.abstain_costs_budget,
            test_sets=self.test_sets, store=events, cache_dir=self.cache_dir,
            on_fitted=self._on_fitted)

    def _features_ready(self, prepared: PreparedFeatures) -> None:
        """The features the session waited for: the learner, the strategy, the audit and the
        stopping notice read them from now on; the engine is rebuilt on them from the store's
        events (the same answers), and the next round is chosen on them."""
        assert self.worker is not None
        with self.store.lock:
            self.X_pool = np.asarray(prepared.inputs, dtype=np.float32)
            # the held-out sets in the new features (one it does not give cannot be read)
            self.test_sets = dict(prepared.test_sets)
            if prepared.exporter is not None:
                self.exporter = prepared.exporter
            if self.audit is not None and prepared.audit_features is not None:
                self.audit.images = dataclasses.replace(self.audit.images,
                                                        inputs=prepared.audit_features)
            if self.config.stopping is not None:
                self.stopping = SessionStopping(self.config.stopping, self.X_pool,
                                                self.config.seed, self.store)
            self.info.update(prepared.info)
            self.worker.learner = None  # fitted on the pixels: no guess from it now
            self._awaiting_features = False
        log.info("the features are ready: the next round is chosen on them")
        self.worker.rebuild()

    def _features_failed(self, error: str) -> None:
        """The features could not be learned: the session goes on with the pixels."""
        assert self.worker is not None
        self.info["features"] = f"pixels (the features failed: {error})"
        self._awaiting_features = False
        self.worker.request()

    def _on_fitted(self, record: RoundRecord, learner: Learner) -> None:
        """Round ``record.round``'s fit (on every answer before it): the learning curve and
        the stopping notice."""
        self.store.record_fit(record.round, record.n_train, self.store.n_asked(),
                              record.accuracy)
        self._fitted = (record.round, record.n_train)
        if self.audit is not None:
            self.audit.refresh(learner, record.round, record.n_train)
        if self.stopping is not None:
            self.stopping.observe(record.round, record.n_train, learner)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the worker (waiting up to ``timeout`` s for a step under way) and the store."""
        if self.worker is not None:
            self.worker.close(timeout)
        self.store.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the worker has nothing left to do (tests, scripts); False on timeout."""
        return True if self.worker is None else self.worker.wait_idle(timeout)

    @property
    def learner(self) -> Learner | None:
        """The newest fitted learner (the one that chose the open round), None before any."""
        return None if self.worker is None else self.worker.learner

    @property
    def preparing(self) -> bool:
        """Whether the next round is being computed (labelers wait for its batch)."""
        with self.store.lock:
            return self.store.finished() is None and self.store.open_round() is None

    @property
    def finished(self) -> bool:
        return self.store.finished() is not None

    # -- requests -------------------------------------------------------------------------
    def query_dicts(self, rows: Sequence[QueryRow]) -> list[dict[str, Any]]:
        """Queries as the API hands them out: with their file (in a session with files) and
        the current model's guess (see :meth:`guesses`)."""
        guesses = self.guesses(rows)
        out = []
        for row in rows:
            item = row.as_dict()
            if self.files is not None:
                item["path"] = None if row.pool_index is None else self.files[row.pool_index]
            if row.id in guesses:
                item["guess"] = guesses[row.id]
            out.append(item)
        return out

    def guesses(self, rows: Sequence[QueryRow]) -> dict[int, dict[str, Any]]:
        """The current model's class and probability for each pool query of ``rows`` (by
        query id): what the page offers to show beside the image. None before the first fit
        or for a model without probabilities; synthesized queries get none. Audit images
        never get one (a guess shown could pull the answers that measure the model toward
        it)."""
        learner = self.learner
        pool_rows = [r for r in rows if r.pool_index is not None]
        if not pool_rows or learner is None or not has_capability(learner, Probabilistic):
            return {}
        proba = learner.predict_proba(self.X_pool[[r.pool_index for r in pool_rows]])
        best = proba.argmax(axis=1)
        return {r.id: {"label": int(b), "class": self.classes[int(b)],
                       "confidence": round(float(p[b]), 4)}
                for r, b, p in zip(pool_rows, best, proba, strict=True)}

    def batch(self, labeler: str) -> Batch:
        """The queries this labeler should answer now (a lease; see
        :meth:`LabelStore.assign`), and the session's round, read in one snapshot."""
        check_labeler(labeler)
        limit = self.settings.lease_size or max(self.config.loop.batch, self.config.loop.initial)
        with self.store.lock:
            finished = self.finished
            rows = [] if finished else self.store.assign(labeler, limit,
                                                         self.settings.lease_seconds)
            return Batch(self.store.round(), finished,
                         not finished and self.store.open_round() is None, rows)

    def label(self, query_id: int, label: int, labeler: str) -> LabelOutcome:
        """Record one answer (``-1`` = can't tell), committed before this returns; the answer
        that closes its round has the worker fold it in and ask the next round."""
        check_labeler(labeler)
        if label != ABSTAIN and not 0 <= label < self.n_classes:
            raise InvalidAnswer(f"label {label} is not a class: use 0..{self.n_classes - 1} "
                                f"({', '.join(self.classes)}) or -1 for can't tell")
        with self.store.lock:
            result = self.store.record_label(query_id, label, labeler,
                                             self.settings.lease_seconds)
            if result.outcome == "unknown":
                raise NotFound(f"no query {query_id} in this session")
            if result.outcome == "conflict":
                raise Conflict(f"query {query_id} is already answered with {result.stored}; "
                               "undo it first to change it")
            if result.outcome == "leased":
                raise Conflict(f"query {query_id} is held by another labeler")
            assert result.row is not None
            closed = result.told or (result.outcome == "duplicate"
                                     and self.store.open_round() != result.row.round)
        if result.told:
            self._advance()
        return LabelOutcome("recorded" if result.outcome == "recorded" else "already recorded",
                            query_id, label, closed)

    def undo(self, labeler: str) -> QueryRow:
        """Take back this labeler's last answer of the open round."""
        check_labeler(labeler)
        with self.store.lock:
            if self.finished:
                raise Conflict("the session is finished; answers are final")
            if self.store.open_round() is None:
                raise Conflict("the round is answered and the next one is being prepared; "
                               "answers of finished rounds are final")
            row = self.store.undo_last(labeler)
        if row is None:
            raise Conflict("nothing to undo: no answer of yours in the open round (answers of "
                           "finished rounds are final)")
        return row

    def import_labels(self, items: Sequence[tuple[int, int]], labeler: str = "import"
                      ) -> dict[str, int]:
        """Record labels from outside, then have the worker fold them in."""
        self._check_import(items)
        counts = self.store.import_labels(items, labeler)
        if counts["imported"]:
            self._advance()
        return counts

    def _check_import(self, items: Sequence[tuple[int, int]]) -> None:
        for pool_index, label in items:
            if not 0 <= pool_index < len(self.pool):
                raise InvalidImport(f"pool_index {pool_index} is outside the pool "
                                    f"(0..{len(self.pool) - 1})")
            if label != ABSTAIN and not 0 <= label < self.n_classes:
                raise InvalidImport(f"label {label} is not a class")

    def _advance(self) -> None:
        if self.worker is not None:
            self.worker.request()

    def image_png(self, query_id: int) -> bytes:
        """The PNG of a query: a synthesized one's stored image, a pool image as shown."""
        source = self.store.image_source(query_id)
        if source is None:
            raise NotFound(f"no query {query_id} in this session")
        pool_index, image = source
        if image is not None:
            return image
        assert pool_index is not None
        if self._picture is not None:
            try:
                return self._picture(pool_index)
            except (OSError, ValueError):
                pass  # the file changed since the session started: show the stored pixels
        return png_bytes(self.pool.X[pool_index])

    # -- the audit ------------------------------------------------------------------------
    def _audit_due(self) -> int:
        assert self.audit is not None
        with self.store.lock:
            counts = self.store.counts("session")
            finished = self.finished
        return audit_due(len(self.audit.files), counts["labeled"] + counts["abstained"],
                         self.config.loop.budget, finished)

    def audit_batch(self, labeler: str) -> list[dict[str, Any]]:
        """The audit images due now (:func:`~activegen.server.core.audit.audit_due`: the
        sample's share of the budget answered so far, the rest once the session is finished).

        Raises:
            NotFound: the session has no audit sample.
        """
        check_labeler(labeler)
        return self._audit().batch(self._audit_due())

    def audit_label(self, audit_id: int, label: int, labeler: str) -> dict[str, Any]:
        """Record an audit answer and measure the current model on it."""
        outcome = self._audit().label(audit_id, label, labeler)
        if outcome["status"] == "recorded":
            self._audit().refresh(self.learner, *self._fitted)
        return outcome

    def audit_undo(self, labeler: str) -> int:
        """Take back this labeler's latest audit answer and measure the model without it."""
        audit_id = self._audit().undo(labeler)
        self._audit().refresh(self.learner, *self._fitted)
        return audit_id

    def audit_state(self) -> dict[str, Any] | None:
        """The audit's estimate, its curve and what is due (None without an audit)."""
        return None if self.audit is None else self.audit.state(self._audit_due())

    def _audit(self) -> Audit:
        if self.audit is None:
            raise NotFound("this session has no audit sample")
        return self.audit

    # -- leaving with a model -------------------------------------------------------------
    def _exporter(self) -> tuple[ModelExporter, Learner]:
        if self.exporter is None:
            raise NotFound("this session has no model to export")
        learner = self.learner
        if learner is None:
            raise Conflict("no model yet: answer the first batch")
        return self.exporter, learner

    def model_file(self) -> bytes:
        """The current learner as a model file (see :class:`ModelExporter`)."""
        exporter, learner = self._exporter()
        audit = None
        if self.audit is not None:
            audit = {k: v for k, v in self.audit.state().items() if k != "curve"}
        return exporter.model_file(learner, audit)

    def predictions_csv(self) -> str:
        """Predictions for every pool image nobody answered, least sure first."""
        exporter, learner = self._exporter()
        with self.store.lock:
            answered = self.store.answered_pool_indices()
        return exporter.predictions_csv(learner, answered)

    # -- what the page shows --------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Progress, budget, the learning curve: counts from the store, one snapshot."""
        with self.store.lock:
            counts = self.store.counts("session")
            imported = self.store.counts("import")
            finished = self.finished
            out = {
                "name": self.config.name,
                "classes": self.classes,
                "round": self.store.round(),
                "budget": self.config.loop.budget,
                "asked": self.store.n_asked(),
                "answered": counts["labeled"] + counts["abstained"],
                "labeled": counts["labeled"],
                "abstained": counts["abstained"],
                "imported": imported["labeled"] + imported["abstained"],
                "open": counts["pending"] + counts["assigned"],
                "finished": finished,
                "preparing": not finished and self.store.open_round() is None,
                "worker_error": None if self.worker is None else self.worker.error,
                "round_seconds": None if self.worker is None else self.worker.round_seconds,
                "batch_size": self.config.loop.batch,
                "model_export": self.exporter is not None,
                "image_shape": list(self.pool.image_shape),
                "test_sets": sorted(self.test_sets),
                "curve": self.store.fits(),
                "time": time.time(),
            }
        if self.stopping is not None:
            out["stopping"] = self.stopping.state()
        if self.audit is not None:
            out["audit"] = self.audit_state()
        if self.features_preparation is not None:
            out["feature_preparation"] = self.features_preparation.state()
        out.update(self.info)
        return out


def _flat(payload: Any, prefix: str = "") -> dict[str, Any]:
    """A nested settings dict as ``{"a.b": value}`` (to name the keys that differ)."""
    if not isinstance(payload, dict) or not payload:
        return {prefix: payload}
    out: dict[str, Any] = {}
    for key, value in payload.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def session_learner_factory(config: LabelConfig, n_classes: int) -> Callable[[int], Learner]:
    """Fresh learners of the session, on the session's resolved device (as in a run)."""
    name, params = config.learner.name, config.learner.params
    device = resolve_device(config.device)

    def make(seed: int) -> Learner:
        return LEARNERS.build(name, params, BuildContext(n_classes=n_classes, seed=seed,
                                                         device=device))

    return make
