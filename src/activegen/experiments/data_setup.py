"""The data of an experiment: the pool and its test sets, loaded as the config describes
them and checked against each other (shape, classes, sizes, overlap) before any run.

Shared by experiments and labeling sessions, so both refuse the same bad data alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from activegen.data.combine import check_disjoint, concatenate
from activegen.data.dataset import Dataset
from activegen.data.registry import load_dataset
from activegen.errors import ConfigError
from activegen.experiments.config import DataConfig, ExperimentConfig, TestSetConfig
from activegen.strategies import STRATEGIES

log = logging.getLogger(__name__)


def prepare_dataset(spec: Any, name: str | None = None) -> Dataset:
    """Load and transform one dataset as a :class:`DataConfig` describes it (a list of
    splits is concatenated in order)."""
    splits = [spec.split] if isinstance(spec.split, str) else list(spec.split)
    parts = [load_dataset(spec.dataset, split=s, root=spec.root, task=spec.task) for s in splits]
    ds = parts[0] if len(parts) == 1 else concatenate(parts, spec.dataset)
    if spec.classes is not None:
        ds = ds.select_classes(spec.classes)
    if spec.subset is not None:
        ds = ds.subset(spec.subset, seed=spec.split_seed)
    if spec.pad_to is not None:
        ds = ds.pad_to(spec.pad_to)
    if spec.size is not None:
        ds = ds.resize(spec.size)
    if spec.channels is not None:
        ds = ds.to_channels(spec.channels)
    return ds.renamed(name or spec.dataset)


def load_pool_and_tests(data: DataConfig, test_sets: Sequence[TestSetConfig]
                        ) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool (less any held-out split) and the named test sets, checked to match it.

    Shared by experiments and labeling sessions, so both refuse the same bad data alike.
    """
    pool = prepare_dataset(data)
    if pool.n_classes < 2:
        raise ConfigError(
            f"data: the pool has {pool.n_classes} class ({list(pool.classes)}); active learning "
            "needs at least 2 (check 'classes')"
        )
    tests: dict[str, Dataset] = {}
    if data.test_fraction is not None:
        pool, held_out = pool.split(data.test_fraction, data.split_seed)
        tests[held_out.name] = held_out
        left = len(np.unique(pool.y))
        if left < pool.n_classes:  # the split is stratified: a class goes when the pool does
            raise ConfigError(
                f"data.test_fraction = {data.test_fraction} leaves the pool {len(pool)} "
                f"image(s), covering {left} of the {pool.n_classes} classes; every class needs "
                "pool images (lower the fraction)")
    for spec in test_sets:
        tests[spec.name] = prepare_dataset(spec, spec.name)
    for name, test in tests.items():
        if test.image_shape != pool.image_shape:
            raise ConfigError(
                f"test set {name!r} has images of {test.image_shape} (H, W, C) but the pool has "
                f"{pool.image_shape}; set its 'size' (and 'channels') to match"
            )
        if test.classes != pool.classes:
            raise ConfigError(
                f"test set {name!r} has classes {list(test.classes)} but the pool has "
                f"{list(pool.classes)}; select the same 'classes' in both"
            )
        check_test_set_size(name, test, data.test_fraction if name not in
                            {t.name for t in test_sets} else None)
        check_disjoint(pool, test, name)
    return pool, tests


#: Below this many images a test set's accuracy moves in steps of 2 % or more: warned.
SMALL_TEST_SET = 50


def check_test_set_size(name: str, test: Dataset, fraction: float | None = None) -> None:
    """Refuse a test set that lacks a class of the pool (its accuracy cannot speak for that
    class; a 1-image set scores only 0 or 1) and warn about one under
    :data:`SMALL_TEST_SET` images."""
    where = f"data.test_fraction = {fraction} gives the test set {name!r}" if fraction \
        else f"test set {name!r} has"
    present = np.unique(test.y)
    if len(present) < test.n_classes:
        raise ConfigError(
            f"{where} {len(test)} image(s), covering {len(present)} of the {test.n_classes} "
            "classes; every class needs at least one test image (raise the fraction, or "
            "give a larger test set)"
        )
    if len(test) < SMALL_TEST_SET:
        log.warning("%s only %d images: each accuracy moves in steps of %.1f %%; %d or more "
                    "are advised", where, len(test), 100 / len(test), SMALL_TEST_SET)


def load_experiment_data(config: ExperimentConfig) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool and the named test sets, checked against each other and the loop's sizes."""
    pool, tests = load_pool_and_tests(config.data, config.test_sets)
    if config.loop.initial > len(pool):
        raise ConfigError(
            f"loop.initial ({config.loop.initial}) exceeds the pool ({len(pool)} images)"
        )
    if config.loop.budget > len(pool) and not any(
        STRATEGIES.get(s.name).synthesizes for s in config.strategies
    ):
        raise ConfigError(
            f"loop.budget ({config.loop.budget}) exceeds the pool ({len(pool)} images)"
        )
    return pool, tests

