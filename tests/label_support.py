"""Shared helpers of the labeling-server tests: a small digits session and a fake generator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from activegen.data.dataset import Dataset
from activegen.server.config import LabelConfig, parse_label_config
from activegen.server.core.session import LabelSession
from activegen.server.opening import load_session_data, open_session
from activegen.strategies import Query, QueryState, Strategy


def digits_config(classes: list[int] | None = None, strategy: str = "uncertainty",
                  name: str = "test session", *, batch: int = 4, budget: int = 24,
                  initial: int | None = None, cold_start: dict[str, Any] | None = None,
                  **labeling: Any) -> LabelConfig:
    # Inline rounds by default, so that a test sees the next round as soon as it answers the
    # last query; the background worker has its own tests (test_session_worker.py).
    settings = {"background": False, **labeling}
    loop: dict[str, Any] = {"initial": batch if initial is None else initial, "batch": batch,
                            "budget": budget}
    if cold_start is not None:
        loop["cold_start"] = cold_start
    data: dict[str, Any] = {"dataset": "digits", "test_fraction": 0.3}
    if classes is not None:
        data["classes"] = classes
    return parse_label_config({"name": name, "seed": 3, "data": data,
                               "strategy": {"name": strategy}, "loop": loop,
                               "labeling": settings})


def make_session(store: Path, config: LabelConfig | None = None,
                 strategy: Strategy | None = None,
                 seed_labels: Sequence[tuple[int, int]] | None = None
                 ) -> tuple[LabelSession, Dataset]:
    """A session and its pool *with* ground truth (the session itself never sees it)."""
    config = config or digits_config()
    pool, _ = load_session_data(config)
    return open_session(config, store, strategy=strategy, seed_labels=seed_labels), pool


class FakeSynthesis(Strategy):
    """Synthesizes images by blending two pool images; records latents and a generator id."""

    name: ClassVar[str] = "fake-synthesis"
    synthesizes: ClassVar[bool] = True

    def query(self, state: QueryState, k: int) -> Query:
        n = len(state.X_pool)
        pairs = state.rng.integers(0, n, size=(k, 2))
        weights = state.rng.random(k).astype(np.float32)
        a, b = state.X_pool[pairs[:, 0]], state.X_pool[pairs[:, 1]]
        samples = weights[:, None, None, None] * a + (1 - weights[:, None, None, None]) * b
        latents = np.stack([pairs[:, 0], pairs[:, 1], weights], axis=1).astype(np.float32)
        return Query.synthesized(samples, latents, scores=weights, generator_id="fake-gen-v1")


def api_client(app: Any, **kwargs: Any) -> Any:
    """A test client that sends the header every state change needs, as the page does."""
    from fastapi.testclient import TestClient

    from activegen.server.web.middleware import REQUEST_HEADERS

    return TestClient(app, headers=REQUEST_HEADERS, **kwargs)


def tiny_net(in_features: int = 64, hidden: int = 8, classes: int = 2) -> Any:
    """A tiny MLP classifier of 8×8 digits, for ``torch-module`` configs in tests
    (``module = "label_support.tiny_net", allow_imports = ["label_support"]``)."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))
