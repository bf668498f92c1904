"""Sample quality of every generator an experiment's GAAL-type strategies use.

For each distinct generator (a strategy with ``gan_settings``, or the primary/secondary of a
``mixed`` schedule): the expert oracle's confidence on ``n`` samples and the Fréchet distance to
the pool in a PCA-32 space of the pool, next to the same figures for every test set (real
images: their distance is what a perfect generator would reach) and the real-vs-real floor
(two halves of the pool). Works on any config with such a strategy, whatever its test sets are
named; the generator is loaded from the experiment's cache (trained there if absent).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activegen.errors import ConfigError
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.runner import build_strategy, cache_dir, load_experiment_data
from activegen.generative import GeneratorSettings, load_or_train
from activegen.generative.cache import shared_cache_dir, trained_on
from activegen.generative.quality import SampleQuality, sample_quality
from activegen.oracles.expert import load_or_fit_expert
from activegen.strategies.gaal import GeneratorStrategy, MixedSchedule

__all__ = ["GeneratorQuality", "gaal_quality", "generator_settings_of"]


@dataclass(frozen=True)
class GeneratorQuality:
    """What :func:`gaal_quality` measured for one generator."""

    strategies: tuple[str, ...]  # the strategy labels that use it
    key: str
    settings: dict[str, Any]
    training: dict[str, Any]  # the cached training report (evaluations, chosen checkpoint)
    generated: SampleQuality
    tests: dict[str, SampleQuality]
    trained_on: dict[str, str] | None = None  # the machine that trained it (None: not recorded)

    def to_dict(self) -> dict[str, Any]:
        return {"strategies": list(self.strategies), "key": self.key, "settings": self.settings,
                "training": self.training, "generated": asdict(self.generated),
                "tests": {k: asdict(v) for k, v in self.tests.items()},
                "trained_on": self.trained_on}


def generator_settings_of(config: ExperimentConfig) -> dict[str, tuple[GeneratorSettings,
                                                                       list[str]]]:
    """Distinct generator settings (trained with the experiment's artifact seed, 0) → the
    labels of the strategies that use them."""
    found: dict[str, tuple[GeneratorSettings, list[str]]] = {}
    for component in config.strategies:
        strategy = build_strategy(config, component.display)
        parts = ([strategy.primary, strategy.secondary] if isinstance(strategy, MixedSchedule)
                 else [strategy])
        for part in parts:
            if isinstance(part, GeneratorStrategy):
                settings = part.settings.generator
                labels = found.setdefault(settings.model_dump_json(), (settings, []))[1]
                if component.display not in labels:
                    labels.append(component.display)
    return found


def gaal_quality(config: ExperimentConfig, out_dir: Path, n: int = 1000,
                 threshold: float | None = None, seed: int = 123) -> list[GeneratorQuality]:
    """Measure each generator of ``config`` (cache under ``out_dir`` or the config's cache).

    Raises:
        ConfigError: no strategy of the config uses a generator, or ``n < 2``.
    """
    if n < 2:
        raise ConfigError(f"gaal-quality needs n >= 2 samples, got {n}")
    generators = generator_settings_of(config)
    if not generators:
        raise ConfigError(f"{config.name}: no strategy uses a generator (gaal, simple-gan, "
                          "gaal-retrieve, mixed)")
    params = dict(config.oracle.params)
    params.update(params.get("base_params") or {})
    C = float(params.get("C", 10.0))
    thr = float(threshold if threshold is not None else params.get("threshold", 0.8))
    pool, tests = load_experiment_data(config)
    cache = cache_dir(config, out_dir)
    expert = load_or_fit_expert(pool, C, cache)

    def proba(X: np.ndarray) -> np.ndarray:
        return expert.predict_proba(X.reshape(len(X), -1))

    real = pool.to_float()
    test_quality = {name: sample_quality(real, t.to_float(), proba, thr)
                    for name, t in tests.items()}
    results: list[GeneratorQuality] = []
    for settings, labels in generators.values():
        cached = load_or_train(real, settings, cache, 0, shared_dir=shared_cache_dir())
        fake = cached.generator.sample(n, torch.Generator().manual_seed(seed)).cpu().numpy()
        results.append(GeneratorQuality(tuple(labels), cached.key, settings.model_dump(),
                                        dict(cached.report.get("report", {})),
                                        sample_quality(real, fake, proba, thr), test_quality,
                                        trained_on(cached.report)))
    return results
