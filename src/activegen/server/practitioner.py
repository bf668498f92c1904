"""Labeling a folder of unlabeled images into classes the user names (the practitioner's path).

:class:`ImageFolderSession` is a :class:`~activegen.server.session.LabelSession` whose pool is
the readable images of a folder minus a random audit sample (:mod:`activegen.server.audit`),
whose learner sees features (:mod:`activegen.models.features`, computed once per session), and
whose queries and exports name each image's file. It adds: the audit (its own answers, kept in
the store's meta table, never in training), the trained model as a file
(:mod:`activegen.models.export`) and predictions for every unlabeled image, least sure first.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from activegen.data.dataset import Dataset
from activegen.data.unlabeled import display_png
from activegen.errors import ConfigError, DataError
from activegen.models.export import ExportedModel
from activegen.models.features import FeatureExtractor
from activegen.oracles.base import ABSTAIN
from activegen.server.audit import audit_estimate, audit_size, draw_audit
from activegen.server.config import LabelConfig
from activegen.server.folder_cache import load_images_cached, raw_features_cached
from activegen.server.session import LABELER_MAX, LabelSession, RequestError
from activegen.server.store import QueryRow
from activegen.strategies import Strategy

log = logging.getLogger(__name__)

_AUDIT_KEY = "audit_answers"
#: learners that are a linear model on the features (and so export to a model file)
LINEAR_LEARNERS = ("logistic-regression", "linear-svm")


def read_known_labels(path: Path, classes: list[str], index_of: dict[str, int]
                      ) -> list[tuple[int, int]]:
    """``(image index, label)`` pairs from a CSV ``path,label`` (``label`` a class name), or
    from a Label Studio JSON export (``.json``: tasks matched to files by name, see
    :mod:`activegen.server.label_studio_files`).

    Raises:
        DataError: no such file, a bad header, or a row naming an unknown file or class (the
            row and the file are named).
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: no such labels file")
    if Path(path).suffix.lower() == ".json":
        from activegen.server.label_studio_files import read_label_studio_labels

        return read_label_studio_labels(Path(path), classes, index_of)
    reader = csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8")))
    if not {"path", "label"} <= set(reader.fieldnames or []):
        raise DataError(f"{path}: needs a header with 'path' and 'label'; got "
                        f"{reader.fieldnames}")
    items = []
    for line, row in enumerate(reader, start=2):
        name, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if name not in index_of:
            raise DataError(f"{path}, row {line}: file {name!r} is not a readable image of "
                            "the folder")
        if label not in classes:
            raise DataError(f"{path}, row {line} ({name}): class {label!r} is not one of "
                            f"{classes}")
        items.append((index_of[name], classes.index(label)))
    return items


class ImageFolderSession(LabelSession):
    """A labeling session over ``config.images`` (see the module docstring)."""

    def __init__(self, config: LabelConfig, store_path: Path,
                 strategy: Strategy | None = None) -> None:
        images = config.images
        if images is None:
            raise ConfigError("an image-folder session needs an [images] table")
        if config.learner.name not in LINEAR_LEARNERS:
            raise ConfigError(f"learner {config.learner.name!r}: an image-folder session fits a "
                              f"linear model on features; use one of {list(LINEAR_LEARNERS)}")
        self.folder = Path(images.folder)
        self.images_config = images
        cache_dir = (Path(config.cache_dir) if config.cache_dir
                     else Path(store_path).parent / "cache")
        # decoded images (and a backbone's features) are cached by the files' content hashes
        loaded, folder_key = load_images_cached(self.folder, images.size, images.channels,
                                                cache_dir)
        self.skipped = loaded.skipped
        for name, why in loaded.skipped:
            log.warning("skipped %s: %s", name, why)
        n = len(loaded.paths)
        audit_idx = draw_audit(n, audit_size(images.audit, n), config.seed)
        in_pool = np.ones(n, dtype=bool)
        in_pool[audit_idx] = False
        pool_idx = np.flatnonzero(in_pool)
        self.paths = [loaded.paths[i] for i in pool_idx]
        self.audit_paths = [loaded.paths[i] for i in audit_idx]
        known: list[tuple[int, int]] = []
        if images.labels is not None:
            known = read_known_labels(images.labels, list(images.classes),
                                      {p: i for i, p in enumerate(loaded.paths)})
        position = {int(i): j for j, i in enumerate(pool_idx)}
        audit_position = {int(i): j for j, i in enumerate(audit_idx)}
        seed_labels = [(position[i], y) for i, y in known if i in position]
        audit_known = {audit_position[i]: y for i, y in known if i in audit_position}
        if len(pool_idx) < config.loop.initial:
            raise ConfigError(f"loop.initial ({config.loop.initial}) exceeds the "
                              f"pool ({len(pool_idx)} images after the audit sample)")
        self.extractor = FeatureExtractor(  # a "vae" trains on the pool, cached by its bytes
            images.features, images.channels, seed=config.seed, cache_dir=cache_dir)
        raw = raw_features_cached(self.extractor, loaded.X, folder_key, cache_dir)
        if raw is None:
            self.features = self.extractor.fit(loaded.X[pool_idx])
            self.audit_features = self.extractor.transform(loaded.X[audit_idx])
        else:
            self.features = self.extractor.fit_raw(raw[pool_idx])
            self.audit_features = self.extractor.standardise(raw[audit_idx])
        pool = Dataset(loaded.X[pool_idx], np.zeros(len(pool_idx), dtype=np.int64),
                       tuple(images.classes), self.folder.name or "images")
        super().__init__(config, pool, {}, store_path, strategy=strategy,
                         seed_labels=seed_labels or None)
        if audit_known:
            with self.store.lock:
                answers = self._audit_answers()
                for j, y in audit_known.items():
                    answers.setdefault(j, {"label": y, "labeler": "import"})
                self.store.set_meta(_AUDIT_KEY, json.dumps(answers))

    # -- hooks of LabelSession ------------------------------------------------------------
    def _pool_inputs(self) -> np.ndarray:
        return self.features[:, :, None, None]

    def query_dict(self, row: QueryRow) -> dict[str, Any]:
        out = row.as_dict()
        out["path"] = None if row.pool_index is None else self.paths[row.pool_index]
        return out

    def image_png(self, query_id: int) -> bytes:
        source = self.store.image_source(query_id)
        if source is not None and source[0] is not None and source[1] is None:
            try:
                return display_png(self.folder / self.paths[source[0]])
            except (OSError, ValueError):
                pass  # the file changed since the session started: show the stored pixels
        return super().image_png(query_id)

    def state(self) -> dict[str, Any]:
        out = super().state()
        out["audit"] = self.audit_state()
        out["skipped_files"] = [{"path": p, "reason": r} for p, r in self.skipped]
        out["n_skipped"] = len(self.skipped)
        out["features"] = self.images_config.features
        return out

    # -- the audit ------------------------------------------------------------------------
    def _audit_answers(self) -> dict[int, dict[str, Any]]:
        raw = self.store.get_meta(_AUDIT_KEY)
        return {} if raw is None else {int(k): v for k, v in json.loads(raw).items()}

    def audit_batch(self) -> list[dict[str, Any]]:
        with self.store.lock:
            answered = self._audit_answers()
        return [{"audit_id": j, "path": p} for j, p in enumerate(self.audit_paths)
                if j not in answered]

    def audit_label(self, audit_id: int, label: int, labeler: str) -> dict[str, Any]:
        self.check_labeler(labeler)
        if not 0 <= audit_id < len(self.audit_paths):
            raise RequestError(404, f"no audit image {audit_id} (0..{len(self.audit_paths) - 1})")
        if label != ABSTAIN and not 0 <= label < self.n_classes:
            raise RequestError(422, f"label {label} is not a class: use 0..{self.n_classes - 1}"
                                    " or -1 for can't tell")
        with self.store.lock:
            answers = self._audit_answers()
            previous = answers.get(audit_id)
            if previous is not None and previous["label"] != label:
                raise RequestError(409, f"audit image {audit_id} is already answered with "
                                        f"{previous['label']}")
            answers[audit_id] = {"label": label, "labeler": labeler}
            self.store.set_meta(_AUDIT_KEY, json.dumps(answers))
        return {"status": "recorded" if previous is None else "already recorded",
                "audit_id": audit_id, "label": label}

    def audit_image_png(self, audit_id: int) -> bytes:
        if not 0 <= audit_id < len(self.audit_paths):
            raise RequestError(404, f"no audit image {audit_id}")
        try:
            return display_png(self.folder / self.audit_paths[audit_id])
        except (OSError, ValueError) as exc:
            raise RequestError(410, f"{self.audit_paths[audit_id]} is no longer readable: "
                                    f"{exc}") from None

    def audit_state(self) -> dict[str, Any]:
        with self.store.lock:
            truth = {j: int(a["label"]) for j, a in self._audit_answers().items()}
            learner = self.learner
        predicted = None
        if learner is not None and len(self.audit_paths):
            predicted = learner.predict(self.audit_features[:, :, None, None])
        return {"size": len(self.audit_paths), **audit_estimate(truth, predicted)}

    # -- leaving with a model -------------------------------------------------------------
    def exported_model(self) -> ExportedModel:
        learner = self.learner
        if learner is None:
            raise RequestError(409, "no model yet: answer the first batch")
        weights = getattr(learner, "weights", None)
        if weights is None:
            raise RequestError(409, f"learner {self.config.learner.name!r} is not linear; "
                                    "only linear learners export")
        coef, intercept = weights
        assert self.extractor.mean is not None and self.extractor.scale is not None
        images = self.images_config
        return ExportedModel(np.asarray(coef), np.asarray(intercept), self.extractor.mean,
                             self.extractor.scale, list(images.classes), images.size,
                             images.channels, images.features, self.extractor.id,
                             audit=self.audit_state(),
                             vae_state=self.extractor.vae_state() or None)

    def predictions_csv(self) -> str:
        """``path,label,confidence`` of every pool image nobody labeled, least sure first."""
        model = self.exported_model()
        with self.store.lock:
            labeled = {r["pool_index"] for r in self.store.answered()
                       if r["pool_index"] is not None}
        rest = np.asarray([i for i in range(len(self.paths)) if i not in labeled], dtype=int)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "label", "confidence"])
        if len(rest):
            proba = model.proba_from_features(self.features[rest])
            best = proba.argmax(axis=1)
            conf = proba[np.arange(len(rest)), best]
            for k in np.argsort(conf, kind="stable"):
                writer.writerow([self.paths[rest[k]], model.classes[best[k]], f"{conf[k]:.6f}"])
        return buffer.getvalue()


class AuditLabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit_id: StrictInt = Field(ge=0)
    label: StrictInt
    labeler: Annotated[str, Field(min_length=1, max_length=LABELER_MAX)]


def add_image_routes(app: FastAPI, session: ImageFolderSession) -> None:
    """The audit, model and predictions routes of an image-folder session."""

    @app.get("/api/audit/batch")
    def audit_batch(labeler: Annotated[str, Query(min_length=1, max_length=LABELER_MAX)]
                    ) -> dict[str, Any]:
        return {"queries": session.audit_batch()}

    @app.get("/api/audit/image/{audit_id:int}.png")
    def audit_image(audit_id: int) -> Response:
        return Response(session.audit_image_png(audit_id), media_type="image/png")

    @app.post("/api/audit/label")
    def audit_label(body: AuditLabelIn) -> dict[str, Any]:
        return session.audit_label(body.audit_id, body.label, body.labeler)

    @app.get("/api/model.npz")
    def model_file() -> Response:
        return Response(session.exported_model().to_bytes(), media_type="application/octet-stream",
                        headers={"content-disposition": 'attachment; filename="model.npz"'})

    @app.get("/api/predictions.csv")
    def predictions() -> Response:
        return Response(session.predictions_csv(), media_type="text/csv", headers={
            "content-disposition": 'attachment; filename="predictions.csv"'})
