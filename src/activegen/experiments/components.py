"""The parts of one run built from the config: learner factory, strategy, oracle, and what
a strategy's ``prepare`` gets, all on the experiment's device and cache folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from activegen._device import resolve_device
from activegen._settings import BuildContext
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


def make_learner_factory(config: ExperimentConfig, n_classes: int) -> Callable[[int], Learner]:
    """Builds fresh learners of the config on its resolved device (the engine prepares
    pool-prepared ones)."""
    name, params = config.learner.name, config.learner.params
    device = resolve_device(config.device)

    def make(seed: int) -> Learner:
        return LEARNERS.build(name, params, BuildContext(n_classes=n_classes, seed=seed,
                                                         device=device))

    return make


def build_strategy(config: ExperimentConfig, label: str) -> Strategy:
    """The strategy labelled ``label`` (its settings are validated in full already)."""
    component = next(s for s in config.strategies if s.display == label)
    return STRATEGIES.build(component.name, component.params,
                            BuildContext(device=resolve_device(config.device)))


def build_cold_start(config: ExperimentConfig, label: str) -> Strategy | None:
    """The strategy that chooses the first batch of the strategy labelled ``label``: its
    own ``cold_start``, else ``loop.cold_start`` (None: the seeded uniform initial set)."""
    component = config.cold_start_of(label)
    if component is None:
        return None
    return STRATEGIES.build(component.name, component.params,
                            BuildContext(device=resolve_device(config.device)))


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
    if not config.features.is_pixels:  # the source trains once here, then every worker loads
        from activegen.experiments.data_setup import load_experiment_data
        from activegen.experiments.inputs import run_inputs

        _pool, tests = load_experiment_data(config)
        run_inputs(config.features, pool, tests, cache_dir(config, out_dir), show_progress)
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
    return ORACLES.build(config.oracle.name, config.oracle.params, BuildContext(
        n_classes=pool.n_classes, seed=seed, device=resolve_device(config.device),
        cache_dir=cache_dir(config, out_dir), pool=pool))

