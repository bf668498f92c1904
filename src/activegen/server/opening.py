"""The one way to open a labeling session: :func:`open_session`.

``activegen label``, ``activegen label-studio``, the benchmarks and the tests all open their
session here. The config says where the pool comes from (``[data]``: a dataset with held-out
test sets; ``[images]``: an unlabeled folder) and this module builds its
:class:`~activegen.server.core.pool.SessionPool`; the session is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from activegen.data.dataset import Dataset
from activegen.errors import ConfigError
from activegen.server.config import LabelConfig, default_store_path
from activegen.server.core.pool import SessionPool, dataset_pool
from activegen.server.core.session import LabelSession
from activegen.server.images.folder import folder_pool
from activegen.server.interop.interchange import read_labels_file
from activegen.strategies import Strategy


def load_session_data(config: LabelConfig) -> tuple[Dataset, dict[str, Dataset]]:
    """The pool and the held-out test sets of a dataset session, checked to match."""
    from activegen.experiments.data_setup import load_pool_and_tests

    pool, tests = load_pool_and_tests(config.data, config.test_sets)
    if config.loop.initial > len(pool):
        raise ConfigError(f"loop.initial ({config.loop.initial}) exceeds the pool "
                          f"({len(pool)} images)")
    return pool, tests


def session_pool(config: LabelConfig, store_path: Path) -> SessionPool:
    """The pool ``config`` names: its ``[images]`` folder, else its ``[data]`` dataset."""
    if config.images is not None:
        return folder_pool(config, store_path)
    cache_dir = Path(config.cache_dir) if config.cache_dir else Path(store_path).parent / "cache"
    return dataset_pool(*load_session_data(config), features=config.features,
                        cache_dir=cache_dir, seed=config.seed)


def open_session(
    config: LabelConfig,
    store_path: Path | None = None,
    *,
    config_path: Path | None = None,
    pool: SessionPool | None = None,
    strategy: Strategy | None = None,
    seed_labels: Sequence[tuple[int, int]] | None = None,
    import_file: Path | None = None,
) -> LabelSession:
    """Open (or resume) the session of ``config`` on its store.

    Args:
        store_path: the SQLite file (default: :func:`default_store_path`).
        config_path: the config's file (names the default store).
        pool: the pool to label (default: loaded from the config; tests pass their own).
        strategy: a strategy object instead of ``config.strategy`` (tests).
        seed_labels: ``(pool_index, label)`` pairs imported before anything is asked.
        import_file: a file of such labels (``--import``: CSV, Label Studio or JSON export,
            by ``pool_index``); an image folder's known labels are ``images.labels`` instead.

    Raises:
        ConfigError: the store belongs to another session, or ``import_file`` with a folder.
        DataError: the data or a labels file cannot be read.
    """
    store_path = Path(store_path) if store_path is not None else default_store_path(
        config, config_path)
    if import_file is not None and config.images is not None:
        raise ConfigError("with --images, give known labels as --labels (a CSV path,label)")
    pool = pool if pool is not None else session_pool(config, store_path)
    labels = list(seed_labels or ())
    if import_file is not None:
        labels += read_labels_file(Path(import_file), list(pool.images.classes))
    return LabelSession(config, pool, store_path, strategy=strategy, seed_labels=labels or None)
