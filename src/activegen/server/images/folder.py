"""An unlabeled image folder as a labeling session's pool (the practitioner's path).

:func:`folder_pool` reads ``config.images``: the folder's readable images (decoded once and
cached, :mod:`activegen.server.images.folder_cache`) minus a random audit sample
(:mod:`activegen.server.core.audit`), seen by the learner through features
(:mod:`activegen.models.features`, computed once per session), each with its file; the labels
already known (``images.labels``: those of audit images go to the audit, never to training);
and the export of the linear model (:mod:`activegen.server.images.model_export`). The session
that labels it is the ordinary one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from activegen._settings import BuildContext
from activegen.data.dataset import Dataset
from activegen.data.unlabeled import display_png
from activegen.errors import ConfigError
from activegen.models import LEARNERS
from activegen.models.capabilities import Linear, has_capability
from activegen.models.features import FeatureExtractor
from activegen.server.config import LabelConfig
from activegen.server.core.audit import AuditImages, audit_size, draw_audit
from activegen.server.core.pool import SessionPool
from activegen.server.images.folder_cache import load_images_cached, raw_features_cached
from activegen.server.images.known_labels import read_known_labels
from activegen.server.images.model_export import FolderModelExport

log = logging.getLogger(__name__)


def check_linear_learner(config: LabelConfig) -> None:
    """Refuse a learner that is not a linear model (only those export to a model file)."""
    images = config.images
    assert images is not None
    learner = LEARNERS.build(config.learner.name, config.learner.params,
                             BuildContext(n_classes=len(images.classes)))
    if not has_capability(learner, Linear):
        raise ConfigError(f"learner {config.learner.name!r}: an image-folder session fits a "
                          "linear model on features (a learner with linear_weights, such as "
                          "logistic-regression or linear-svm)")


def folder_pool(config: LabelConfig, store_path: Path) -> SessionPool:
    """The session pool of ``config.images`` (see the module docstring).

    Raises:
        ConfigError: no ``[images]`` table, a learner that is not linear, an audit sample as
            large as the folder, or a first batch larger than the pool.
        DataError: no readable image in the folder, or a known-labels file that cannot be read
            (an :class:`~activegen.server.core.errors.InvalidImport`, naming the row).
    """
    images = config.images
    if images is None:
        raise ConfigError("an image-folder session needs an [images] table")
    check_linear_learner(config)
    folder = Path(images.folder)
    cache_dir = (Path(config.cache_dir) if config.cache_dir
                 else Path(store_path).parent / "cache")
    # decoded images (and a backbone's features) are cached by the files' content hashes
    loaded, folder_key = load_images_cached(folder, images.size, images.channels, cache_dir)
    for name, why in loaded.skipped:
        log.warning("skipped %s: %s", name, why)
    n = len(loaded.paths)
    audit_idx = draw_audit(n, audit_size(images.audit, n), config.seed)
    in_pool = np.ones(n, dtype=bool)
    in_pool[audit_idx] = False
    pool_idx = np.flatnonzero(in_pool)
    files = [loaded.paths[i] for i in pool_idx]
    audit_files = [loaded.paths[i] for i in audit_idx]
    known: list[tuple[int, int]] = []
    if images.labels is not None:
        known = read_known_labels(images.labels, list(images.classes),
                                  {p: i for i, p in enumerate(loaded.paths)})
    position = {int(i): j for j, i in enumerate(pool_idx)}
    audit_position = {int(i): j for j, i in enumerate(audit_idx)}
    if len(pool_idx) < config.loop.initial:
        raise ConfigError(f"loop.initial ({config.loop.initial}) exceeds the "
                          f"pool ({len(pool_idx)} images after the audit sample)")
    extractor = FeatureExtractor(  # a "vae" trains on the pool, cached by its bytes
        images.features, images.channels, seed=config.seed, cache_dir=cache_dir)
    raw = raw_features_cached(extractor, loaded.X, folder_key, cache_dir)
    if raw is None:
        features = extractor.fit(loaded.X[pool_idx])
        audit_features = extractor.transform(loaded.X[audit_idx])
    else:
        features = extractor.fit_raw(raw[pool_idx])
        audit_features = extractor.standardise(raw[audit_idx])

    def picture(i: int) -> bytes:
        return display_png(folder / files[i])

    def audit_picture(j: int) -> bytes:
        return display_png(folder / audit_files[j])

    return SessionPool(
        images=Dataset(loaded.X[pool_idx], np.zeros(len(pool_idx), dtype=np.int64),
                       tuple(images.classes), folder.name or "images"),
        inputs=features,
        files=files,
        picture=picture,
        known=[(position[i], y) for i, y in known if i in position],
        # --audit 0: no audit sample, so no audit routes and no estimate to promise
        audit=None if not len(audit_idx) else AuditImages(
            audit_files, audit_features, audit_picture,
            {audit_position[i]: y for i, y in known if i in audit_position}),
        exporter=FolderModelExport(images, extractor, features, files),
        info={"skipped_files": [{"path": p, "reason": r} for p, r in loaded.skipped],
              "n_skipped": len(loaded.skipped), "features": images.features},
    )
