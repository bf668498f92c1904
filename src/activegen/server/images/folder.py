"""An unlabeled image folder as a labeling session's pool (the practitioner's path).

:func:`folder_pool` reads ``config.images``: the folder's readable images (decoded once and
cached, :mod:`activegen.server.images.folder_cache`) minus a random audit sample
(:mod:`activegen.server.core.audit`), seen by the learner through features
(:mod:`activegen.models.features`, computed once per session), each with its file; the labels
already known (``images.labels``: those of audit images go to the audit, never to training);
and the export of the linear model (:mod:`activegen.server.images.model_export`). The session
that labels it is the ordinary one.

A folder grows: photos are added while a session runs. The store keeps the session's layout
(its pool and audit files, in order, with their SHA-256), so a reopened session keeps every
image where its answers put it and appends the new files to the pool; the audit sample stays
the one drawn. A file of the layout that is gone or changed is refused by name (its answers
would label another image).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from activegen._settings import BuildContext
from activegen.data.dataset import Dataset
from activegen.data.unlabeled import display_png
from activegen.errors import ConfigError
from activegen.models import LEARNERS
from activegen.models.capabilities import Linear, has_capability
from activegen.models.features import VAE_SETTINGS, FeatureExtractor
from activegen.server.config import LabelConfig
from activegen.server.core.audit import AuditImages, audit_size, draw_audit
from activegen.server.core.pool import SessionPool
from activegen.server.core.preparation import FeaturePreparation, PreparedFeatures, Progress
from activegen.server.core.schema import POOL_LAYOUT_KEY
from activegen.server.core.store import read_meta
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
    loaded, folder_key, contents = load_images_cached(folder, images.size, images.channels,
                                                      cache_dir)
    for name, why in loaded.skipped:
        log.warning("skipped %s: %s", name, why)
    stored = read_meta(store_path, POOL_LAYOUT_KEY)
    files, audit_files = arrange(loaded.paths, contents, stored, images.audit, config.seed,
                                 store_path)
    row_of = {p: i for i, p in enumerate(loaded.paths)}
    pool_idx = np.asarray([row_of[p] for p in files], dtype=np.int64)
    audit_idx = np.asarray([row_of[p] for p in audit_files], dtype=np.int64)
    known: list[tuple[int, int]] = []
    if images.labels is not None:
        known = read_known_labels(images.labels, list(images.classes),
                                  {p: i for i, p in enumerate(loaded.paths)})
    position = {int(i): j for j, i in enumerate(pool_idx)}
    audit_position = {int(i): j for j, i in enumerate(audit_idx)}
    if len(pool_idx) < config.loop.initial:
        raise ConfigError(f"loop.initial ({config.loop.initial}) exceeds the "
                          f"pool ({len(pool_idx)} images after the audit sample)")
    pool_images, audit_images = loaded.X[pool_idx], loaded.X[audit_idx]

    def extractor_of(spec: str, on_progress: Progress | None = None) -> FeatureExtractor:
        # a "vae" or "self-supervised" extractor trains on the pool, cached by its bytes
        return FeatureExtractor(spec, images.channels, seed=config.seed, cache_dir=cache_dir,
                                self_supervised=config.features.self_supervised,
                                on_progress=on_progress, display="none")

    extractor = extractor_of(images.features)
    preparing: FeaturePreparation | None = None
    if not extractor.encoder_cached(pool_images):
        # minutes of training: the session opens on the pixels now (the first batch is
        # labeled on them) and the features are learned meanwhile, then swapped in
        extractor = extractor_of("pixels")

        def prepare(progress: Progress) -> PreparedFeatures:
            trained = extractor_of(images.features, progress)
            pool_features = trained.fit(pool_images)
            return PreparedFeatures(
                inputs=pool_features, audit_features=trained.transform(audit_images),
                exporter=FolderModelExport(images, trained, pool_features, files),
                info={"features": images.features})

        ssl = config.features.self_supervised
        trains_ssl = images.features == "self-supervised"
        height, width, channels = pool_images.shape[1:]
        preparing = FeaturePreparation(
            images.features, ssl.epochs if trains_ssl else VAE_SETTINGS.epochs, prepare,
            ssl.estimated_seconds(len(pool_images), (channels, height, width)) if trains_ssl
            else None)
    raw = raw_features_cached(extractor, loaded.X, folder_key, cache_dir)
    if raw is None:
        features = extractor.fit(pool_images)
        audit_features = extractor.transform(audit_images)
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
              "n_skipped": len(loaded.skipped),
              "features": images.features if preparing is None
              else f"pixels (until the {images.features} features are ready)"},
        layout={"pool": [[p, contents.get(p, "")] for p in files],
                "audit": [[p, contents.get(p, "")] for p in audit_files]},
        preparing=preparing,
    )


def arrange(paths: list[str], contents: dict[str, str], layout: str | None, audit: float,
            seed: int, store_path: Path) -> tuple[list[str], list[str]]:
    """The pool's files and the audit's, in order: a new session draws the audit sample from
    ``paths``; a session with a stored ``layout`` (JSON: its pool and audit files with their
    SHA-256) keeps it and appends the files it has not seen to the pool.

    Raises:
        ConfigError: a file of the layout is gone, unreadable or changed (named).
    """
    if layout is None:
        n = len(paths)
        audit_idx = draw_audit(n, audit_size(audit, n), seed)
        in_audit = set(audit_idx.tolist())
        return ([p for i, p in enumerate(paths) if i not in in_audit],
                [paths[i] for i in audit_idx])
    try:
        table: Any = json.loads(layout)
        pool = [(str(name), str(sha)) for name, sha in table["pool"]]
        audited = [(str(name), str(sha)) for name, sha in table["audit"]]
    except (KeyError, TypeError, ValueError, RecursionError):
        raise ConfigError(f"{store_path}: its record of the folder's files cannot be read; "
                          "open another --store (the answers stay exportable with "
                          f"'activegen label-export {store_path}')") from None
    readable = set(paths)
    lost = [name for name, sha in [*pool, *audited]
            if name not in readable or (sha and contents.get(name) != sha)]
    if lost:
        raise ConfigError(
            f"{store_path}: {len(lost)} image(s) the session has seen are gone, unreadable or "
            f"changed in the folder ({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''}); "
            "their answers would label other pixels: restore them, or open another --store")
    known = {name for name, _ in [*pool, *audited]}
    new = [p for p in paths if p not in known]
    if new:
        log.info("%d new image(s) in the folder join the pool", len(new))
    return [name for name, _ in pool] + new, [name for name, _ in audited]
