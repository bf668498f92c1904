"""The label store as the engine's :class:`~activegen.engine.StateStore`.

A run keeps its events in a checkpoint file; a labeling session keeps the same events in its
SQLite store, each written in the transaction of the action it records
(:class:`~activegen.server.core.store.LabelStore`). :class:`StoredEvents` hands them to
:class:`~activegen.engine.ActiveLearner`, which folds them with the one
:func:`~activegen.engine.replay`: a session reopened after a crash holds the state of one that
never stopped, by construction.

``save`` writes nothing: the session's worker writes each event into the store itself, in the
transaction of its round (or a request writes it, in the transaction of the answer), so there
is nothing left to keep when the engine calls ``save``. The session's records (the learning
curve) are the store's ``fits``, written when each learner is fitted; the checkpoint's records
stay empty.
"""

from __future__ import annotations

from pathlib import Path

from activegen.engine import Checkpoint
from activegen.server.core.store import LabelStore


class StoredEvents:
    """:class:`~activegen.engine.StateStore` over a :class:`LabelStore` (module docstring).

    Attributes:
        seq: the number of the last event :meth:`load` read (the worker applies the ones
            after it).
    """

    def __init__(self, store: LabelStore) -> None:
        self.store = store
        self.path: Path = store.path  # named in the engine's error messages
        self.seq = 0

    def __str__(self) -> str:
        return f"label store {self.path}"

    def load(self) -> Checkpoint:
        """Every stored event, in order (read in one locked pass)."""
        with self.store.lock:
            numbered = self.store.events()
        self.seq = numbered[-1][0] if numbered else 0
        return Checkpoint([event for _, event in numbered])

    def save(self, checkpoint: Checkpoint) -> None:
        """Nothing to write: every event is already in the store (module docstring)."""
