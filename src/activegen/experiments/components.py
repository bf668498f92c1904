"""The parts of one run built from the config: learner factory, strategy, oracle, and what
a strategy's ``prepare`` gets, all on the experiment's device and cache folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from activegen._device import device_setting, resolve_device
from activegen.data.dataset import Dataset
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.plan import RunSpec
from activegen.experiments.results import SUPERVISED
from activegen.models import LEARNERS, Learner
from activegen.oracles import ORACLES, Oracle
from activegen.strategies import STRATEGIES, PrepareContext, Strategy

log = logging.getLogger(__name__)


def cache_dir(config: ExperimentConfig, out_dir: Path) -> Path:
    return Path(config.cache_dir) if config.cache_dir else out_dir / "cache"


def device_default(config: ExperimentConfig, cls: type, params: dict[str, Any]
                   ) -> dict[str, Any]:
    """The experiment's device as a constructor argument for a component class that takes
    ``device`` (torch learners, GPU strategies) and whose config does not set its own, so
    one ``device`` / ``--device`` moves every torch path (:func:`device_setting`)."""
    return device_setting(cls, params, config.device)


def make_learner_factory(config: ExperimentConfig, n_classes: int) -> Callable[[int], Learner]:
    """Builds fresh learners of the config (the engine prepares pool-prepared ones)."""
    params = config.learner.params
    context = device_default(config, LEARNERS.get(config.learner.name), params)

    def make(seed: int) -> Learner:
        return LEARNERS.build(config.learner.name, params, n_classes=n_classes, seed=seed,
                              **context)

    return make


def build_strategy(config: ExperimentConfig, label: str) -> Strategy:
    component = next(s for s in config.strategies if s.display == label)
    cls = STRATEGIES.get(component.name)
    return STRATEGIES.build(component.name, component.params,
                            **device_default(config, cls, component.params))


def prepare_context(config: ExperimentConfig, pool: Dataset, out_dir: Path,
                    show_progress: bool = False) -> PrepareContext:
    """What :meth:`Strategy.prepare` gets: one ``artifact_seed`` for the whole experiment, so
    one generator or VAE (cached under ``cache_dir``) serves every strategy and seed."""
    return PrepareContext(
        pool=pool,
        cache_dir=cache_dir(config, out_dir),
        device=resolve_device(config.device),
        artifact_seed=0,
        show_progress=show_progress,
    )


def warm_up_artifacts(config: ExperimentConfig, pool: Dataset, out_dir: Path,
                      specs: Iterable[RunSpec], show_progress: bool = False) -> int:
    """Call ``prepare`` once in the driver for each distinct (strategy, parameters) among
    ``specs`` whose class overrides it, so that its cached artifact (a generator, a VAE) is
    trained once before parallel runs start, instead of once per worker racing each other.

    Returns how many strategies were prepared.
    """
    seen: set[str] = set()
    prepared = 0
    labels = {spec.strategy for spec in specs if spec.strategy != SUPERVISED}
    for component in config.strategies:
        if component.display not in labels:
            continue
        key = json.dumps([component.name, component.params], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        strategy = build_strategy(config, component.display)
        if type(strategy).prepare is Strategy.prepare:
            continue
        log.info("preparing %s once before the parallel runs", component.display)
        strategy.prepare(prepare_context(config, pool, out_dir, show_progress))
        prepared += 1
    return prepared


def build_oracle(config: ExperimentConfig, pool: Dataset, seed: int, out_dir: Path) -> Oracle:
    return ORACLES.build(
        config.oracle.name,
        config.oracle.params,
        pool=pool,
        seed=seed,
        cache_dir=cache_dir(config, out_dir),
        device=resolve_device(config.device),
        n_classes=pool.n_classes,
    )

