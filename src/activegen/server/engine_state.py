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
from activegen.engine import Checkpoint, Event
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

    def load(self) -> Checkpoint:
        """The events of the store's rounds, read in one locked pass: each closed round asked
        and told (session round ``r`` is engine round ``r - 1``), its imports taught after it,
        and the open round asked."""
        with self.store.lock:
            m = told_rounds(self.store)
            current = self.store.current_round()
            rows = self.store.read(
                "SELECT q.round, q.source, q.kind, q.pool_index, q.image, l.label FROM queries q "
                "LEFT JOIN labels l ON l.query_id = q.id "
                "ORDER BY q.round, q.source DESC, q.position, q.id")
        events: list[Event] = []
        for r in range(1, current + 1):
            session = [row for row in rows if row[0] == r and row[1] == "session"]
            imports = [row for row in rows if row[0] == r and row[1] == "import"]
            taught = None if not imports else Event(
                "taught", r, np.asarray([row[3] for row in imports], np.int64),
                labels=np.asarray([row[5] for row in imports], np.int64), charged=False)
            if taught is not None and r > m:  # the open round's imports, before its answers
                events.append(taught)
            if not session:
                continue
            if session[0][2] == "synth":
                samples = images_to_float(np.stack([png_to_image(row[4], self.channels)
                                                    for row in session]))
                asked = Event("asked", r - 1, samples=samples)
            else:
                asked = Event("asked", r - 1, np.asarray([row[3] for row in session], np.int64))
            events.append(asked)
            if r <= m:
                events.append(Event("told", r - 1, labels=np.asarray(
                    [row[5] for row in session], dtype=np.int64)))
                if taught is not None:
                    events.append(taught)
        return Checkpoint(events)

    def save(self, checkpoint: Checkpoint) -> None:
        """Nothing to write: every answer is already committed (module docstring)."""
