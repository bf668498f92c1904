"""A labeling session: the active-learning loop with a person as the oracle, driven by the store.

The loop's structure is the benchmark loop's (fit → query → label → add), but its state lives
in the :class:`~activegen.server.store.LabelStore`, so the process may die at any moment:

- round ``r``'s queries are chosen by a learner fitted on every answer of rounds ``< r``, with
  seeds derived from ``(seed, r)``; they are stored in one transaction before any is served;
- when the last open query of a round is answered, the next round is generated at once; if the
  process dies in between, opening the session again generates it (identically);
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
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from activegen._atomic import atomic_write_bytes
from activegen._device import resolve_device
from activegen.data.dataset import Dataset, float_to_images, images_to_float
from activegen.engine import choose_batch, derive_seed, fit_learner
from activegen.errors import ConfigError, EmptyPoolError
from activegen.models import LEARNERS, Learner
from activegen.models.capabilities import FitContext
from activegen.oracles.base import ABSTAIN
from activegen.server.config import LabelConfig
from activegen.server.stopping_notice import SessionStopping
from activegen.server.store import LabelStore, NewQuery, QueryRow
from activegen.strategies import STRATEGIES, PrepareContext, Query, QueryState, Strategy

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


def png_to_image(data: bytes, channels: int) -> np.ndarray:
    """PNG bytes back to ``uint8 [H, W, C]``."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


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
        self.model_path = self.store_path.with_name(self.store_path.name + ".model.pkl")
        self.strategy = strategy or STRATEGIES.build(config.strategy.name, config.strategy.params)
        self.cache_dir = (Path(config.cache_dir) if config.cache_dir
                          else self.store_path.parent / "cache")
        self.make_learner = session_learner_factory(config, self.n_classes)
        self.learner: Learner | None = None
        self.finished = False
        self.store = LabelStore(self.store_path)
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
            with self.store.lock:
                if seed_labels:
                    self._check_import(seed_labels)
                    self.store.import_labels(self.store.current_round(), seed_labels, "import")
                self._advance()
                self._refit_current()
        except BaseException:
            self.store.close()
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

    def close(self) -> None:
        self.store.close()

    # -- the loop -------------------------------------------------------------------------
    def _advance(self) -> None:
        """Generate the next round if the current one is answered and budget is left.

        Call with the store lock held. Idempotent: it does nothing while a round is open, and
        the round it generates depends only on the stored answers and the seed.
        """
        if self.finished:
            return
        current = self.store.current_round()
        if current > 0 and self.store.open_count(current) > 0:
            return
        next_round = current + 1
        learner = self._fit(next_round)
        self.learner = learner
        remaining = self.settings.budget - self.store.n_asked()
        if remaining <= 0:
            self.finished = True
            return
        k = min(self.settings.first_batch if next_round == 1 else self.settings.batch, remaining)
        try:
            queries = self._choose(next_round, learner, k)
        except EmptyPoolError:
            log.info("the pool is exhausted; the session is finished")
            queries = []
        if not queries:
            self.finished = True
            return
        self.store.insert_round(next_round, queries)
        log.info("round %d: %d queries stored", next_round, len(queries))

    def _training_set(self, before_round: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pool indices and labels, then extra (synthesized) images and labels, for the fit of
        ``before_round``."""
        pool_idx, pool_y, extra, extra_y = [], [], [], []
        channels = self.pool.image_shape[2]
        for kind, pool_index, image, label in self.store.training_rows(before_round):
            if kind == "pool":
                pool_idx.append(pool_index)
                pool_y.append(label)
            else:
                extra.append(png_to_image(image, channels))
                extra_y.append(label)
        c, h, w = self.X_pool.shape[1:]
        X_extra = (images_to_float(np.stack(extra)) if extra
                   else np.empty((0, c, h, w), dtype=np.float32))
        return (np.asarray(pool_idx, dtype=np.int64), np.asarray(pool_y, dtype=np.int64),
                X_extra, np.asarray(extra_y, dtype=np.int64))

    def _fit(self, round_: int) -> Learner | None:
        """The learner of ``round_``: fitted on every answer of earlier rounds (None if there
        is none), evaluated on the test sets, saved next to the store."""
        pool_idx, pool_y, X_extra, y_extra = self._training_set(round_)
        if len(pool_y) + len(y_extra) == 0:
            return None
        X = np.concatenate([self.X_pool[pool_idx], X_extra])
        y = np.concatenate([pool_y, y_extra])
        # The engine's fit path (seeds, pool preparation, fit context with the strategy's
        # extra features); session round r is the experiment's round r - 1.
        context = FitContext(round=round_ - 1, labels_initial=self.settings.first_batch,
                             labels_per_round=self.settings.batch)
        learner, _ = fit_learner(self.make_learner, X, y, seed=self.config.seed, round_=round_,
                                 context=context, strategy=self.strategy, X_pool=self.X_pool,
                                 cache_dir=self.cache_dir)
        accuracy = {name: learner.score(Xt, yt) for name, (Xt, yt) in self.test_sets.items()}
        self.store.record_fit(round_, len(y), self.store.n_asked(), accuracy)
        if self.stopping is not None:
            self.stopping.observe(round_, len(y), learner)
        atomic_write_bytes(self.model_path, pickle.dumps(learner))
        return learner

    def _refit_current(self) -> None:
        """After opening the store: the learner that chose the current round's queries."""
        current = self.store.current_round()
        if self.learner is None and not self.finished and current > 0:
            self.learner = self._fit(current)

    def _choose(self, round_: int, learner: Learner | None, k: int) -> list[NewQuery]:
        """Round ``round_``'s queries: random (seeded) before any label, else the strategy's."""
        queried = np.zeros(len(self.pool), dtype=bool)
        queried[self.store.queried_pool_indices()] = True
        rng = np.random.default_rng(derive_seed(self.config.seed, round_, 3))
        if learner is None:
            pool_idx = np.empty(0, dtype=np.int64)
            X_extra = y_extra = None
        else:
            pool_idx, _, X_extra, y_extra = self._training_set(round_)
        state = QueryState(
            X_pool=self.X_pool,
            queried=queried,
            labeled_indices=pool_idx,
            learner=learner,  # type: ignore[arg-type]
            n_classes=self.n_classes,
            rng=rng,
            round=round_,
            X_extra=X_extra,
            y_extra=y_extra,
        )
        # The engine's choice: a seeded random draw before any label, else the strategy's,
        # checked (not empty, at most k, no pool image twice).
        return self._to_new_queries(choose_batch(self.strategy, state, k, self.config.seed))

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
            limit = self.settings.lease_size or max(self.settings.batch,
                                                    self.settings.first_batch)
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
            before = self.store.current_round()
            self._advance()
            closed = self.store.current_round() != before or self.finished
        return LabelOutcome("recorded" if outcome == "recorded" else "already recorded",
                            query_id, label, closed)

    def undo(self, labeler: str) -> QueryRow:
        """Take back this labeler's last answer of the open round."""
        self.check_labeler(labeler)
        with self.store.lock:
            if self.finished:
                raise RequestError(409, "the session is finished; answers are final")
            row = self.store.undo_last(labeler, self.store.current_round())
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
            self._advance()
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
                "budget": self.settings.budget,
                "asked": self.store.n_asked(),
                "answered": counts["labeled"] + counts["abstained"],
                "labeled": counts["labeled"],
                "abstained": counts["abstained"],
                "imported": imported["labeled"] + imported["abstained"],
                "open": counts["pending"] + counts["assigned"],
                "finished": self.finished,
                "image_shape": list(self.pool.image_shape),
                "test_sets": sorted(self.test_sets),
                "curve": self.store.fits(),
                "time": time.time(),
                **({} if self.stopping is None else {"stopping": self.stopping.state()}),
            }


def session_learner_factory(config: LabelConfig, n_classes: int) -> Callable[[int], Learner]:
    """Fresh learners of the session, on the session's resolved device (as in a run)."""
    from activegen.experiments.runner import device_default

    params = config.learner.params
    context = device_default(config, LEARNERS.get(config.learner.name), params)  # type: ignore[arg-type]

    def make(seed: int) -> Learner:
        return LEARNERS.build(config.learner.name, params, n_classes=n_classes, seed=seed,
                              **context)

    return make


def load_session_data(config: LabelConfig) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool and the held-out test sets of a labeling session, checked to match."""
    from activegen.experiments.runner import load_pool_and_tests

    pool, tests = load_pool_and_tests(config.data, config.test_sets)
    if config.labeling.first_batch > len(pool):
        raise ConfigError(f"labeling.initial ({config.labeling.first_batch}) exceeds the pool "
                          f"({len(pool)} images)")
    return pool, tests
