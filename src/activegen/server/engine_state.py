"""The engine's state read from the labeling session's SQLite store.

The labeling session keeps no state of its own besides the :class:`LabelStore`: every answer
is committed there before it is acknowledged. :class:`LabelStoreState` is the engine's
:class:`~activegen.engine.StateStore` over it, so that ``ActiveLearner.ask`` sees exactly the
answers a person gave. ``load`` rebuilds the :class:`~activegen.engine.LoopState` of the
rounds that are *closed* (every query answered): session round ``r`` is the engine's round
``r - 1``, so the engine's state after ``m`` told rounds chooses session round ``m + 1``.
Synthesized images are read back from the PNG the person saw, so a session reopened after a
crash trains on the very pixels an uninterrupted one trains on.

``save`` writes nothing: the answers are already durable (each one committed by
:meth:`LabelStore.record_label` before it is acknowledged), and the round records go to the
store's ``fits`` table from the engine's ``on_fitted`` hook. While a session runs, its engine
stays in memory and is *told* each closed round's answers (``ActiveLearner.tell``); ``load``
rebuilds the same state after a restart or an import (``tests/test_session_tell.py``).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from activegen.data.dataset import images_to_float
from activegen.engine import LoopState
from activegen.server.store import LabelStore


def png_to_image(data: bytes, channels: int) -> np.ndarray:
    """PNG bytes back to ``uint8 [H, W, C]``."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def told_rounds(store: LabelStore) -> int:
    """How many session rounds are closed (all answered); call with the store lock held."""
    current = store.current_round()
    if current > 0 and store.open_count(current) > 0:
        return current - 1
    return current


class LabelStoreState:
    """:class:`~activegen.engine.StateStore` over a :class:`LabelStore` (module docstring).

    Args:
        store: the session's store.
        n_pool: images in the pool.
        input_shape: ``(C, H, W)`` of the engine's inputs (pool images or features).
        channels: channels of the stored images (for synthesized PNGs).
    """

    def __init__(self, store: LabelStore, n_pool: int, input_shape: tuple[int, int, int],
                 channels: int) -> None:
        self.store = store
        self.n_pool = n_pool
        self.input_shape = input_shape
        self.channels = channels
        self.path = store.path  # named in the engine's error messages

    def load(self) -> LoopState:
        """The state after the closed rounds, read in one locked pass over the store."""
        with self.store.lock:
            m = told_rounds(self.store)
            rows = self.store.training_rows(m + 1)
            queried = np.zeros(self.n_pool, dtype=bool)
            queried[self.store.queried_pool_indices()] = True
            per_round = self.store.read(
                "SELECT q.round, COUNT(*), SUM(CASE WHEN l.label >= 0 THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN l.label < 0 THEN 1 ELSE 0 END) FROM queries q "
                "LEFT JOIN labels l ON l.query_id = q.id WHERE q.source='session' "
                "AND q.round <= ? GROUP BY q.round ORDER BY q.round", (m,))
        pool_idx, pool_y, extra, extra_y = [], [], [], []
        for kind, pool_index, image, label in rows:
            if kind == "pool":
                pool_idx.append(pool_index)
                pool_y.append(label)
            else:
                extra.append(png_to_image(image, self.channels))
                extra_y.append(label)
        X_extra = (images_to_float(np.stack(extra)) if extra
                   else np.empty((0, *self.input_shape), dtype=np.float32))
        empty_rounds = 0
        for _, _, n_labeled, _ in reversed(per_round):
            if n_labeled:
                break
            empty_rounds += 1
        return LoopState(
            round=m,
            labeled_indices=np.asarray(pool_idx, dtype=np.int64),
            labeled_y=np.asarray(pool_y, dtype=np.int64),
            queried=queried,
            X_extra=X_extra,
            y_extra=np.asarray(extra_y, dtype=np.int64),
            n_spent=int(sum(n for _, n, _, _ in per_round)),
            n_abstained=int(sum(a or 0 for _, _, _, a in per_round)),
            empty_rounds=empty_rounds,
        )

    def save(self, state: LoopState) -> None:
        """Nothing to write: every answer is already committed (module docstring)."""
