"""The fully supervised reference: the learner trained on the whole pool with its true
labels, through the engine's one fit path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from activegen.data.dataset import Dataset
from activegen.engine import fit_learner
from activegen.experiments.components import make_learner_factory
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.results import SUPERVISED
from activegen.loop import RoundRecord, records_to_rows
from activegen.models.capabilities import FitContext


def run_supervised(config: ExperimentConfig, pool: Dataset, tests: dict[str, Dataset],
                   seed: int, cache: Path | None = None,
                   inputs: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None
                   ) -> list[dict[str, Any]]:
    """The learner trained on the whole pool with its true labels: the reference line.

    It takes the engine's fit path; its fit context is the round at which a run would have
    labeled the whole pool (the ``grow`` schedule trains as long as it would then).
    """
    X = pool.to_float() if inputs is None else inputs[0]
    rounds = len(config.loop.settings(budget=max(len(pool), config.loop.initial))
                 .label_counts) - 1
    context = FitContext(round=rounds)
    learner, fit_seconds = fit_learner(make_learner_factory(config, pool.n_classes), X, pool.y,
                                       seed=seed, round_=0, context=context, X_pool=X,
                                       cache_dir=cache)
    record = RoundRecord(
        round=0,
        n_labels=len(pool),
        n_train=len(pool),
        n_abstained=0,
        accuracy={name: learner.score(t.to_float() if inputs is None else inputs[1][name], t.y)
                  for name, t in tests.items()},
        fit_seconds=fit_seconds,
        eval_seconds=0.0,
    )
    return records_to_rows([record], dataset=pool.name, strategy=SUPERVISED, seed=seed,
                           n_classes=pool.n_classes)

