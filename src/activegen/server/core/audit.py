"""An honest estimate: a random audit sample the person labels, never used for training.

Active-learning picks are chosen for being hard, so accuracy on them is biased. The audit
sample is drawn uniformly at random (seeded) from the readable images before anything else and
removed from the pool, so no strategy can pick it and no learner sees it; the current model's
accuracy on the audited images, with a Wilson score interval, estimates its accuracy on the
whole folder.

:class:`Audit` is the session's audit component: the sample's images, their answers (kept in
the store's ``meta`` table, never in the events: they are not training data) and the estimate.
A session has one when its pool comes with an audit sample (an image folder's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from activegen.errors import ConfigError
from activegen.models.base import Learner
from activegen.oracles.base import ABSTAIN
from activegen.server.core.errors import Conflict, Gone, InvalidAnswer, NotFound
from activegen.server.core.labeler import check_labeler
from activegen.server.core.schema import AUDIT_KEY
from activegen.server.core.store import LabelStore


def audit_size(audit: float, n_images: int) -> int:
    """``audit`` images (an integer >= 1) or that fraction of ``n_images`` (0 < audit < 1)."""
    if audit < 0:
        raise ConfigError(f"audit {audit} must be >= 0 (a count, or a fraction below 1)")
    n = round(audit * n_images) if 0 < audit < 1 else int(audit)
    if n >= n_images:
        raise ConfigError(f"audit sample ({n}) must be smaller than the {n_images} images")
    return n


def draw_audit(n_images: int, n_audit: int, seed: int) -> np.ndarray:
    """Sorted indices of the audit sample: a seeded uniform draw without replacement."""
    rng = np.random.default_rng([seed, 0xA0D17])
    return np.sort(rng.choice(n_images, size=n_audit, replace=False))


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); ``(0, 1)`` for n=0."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 a bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def audit_estimate(truth: dict[int, int], predicted: np.ndarray | None) -> dict[str, object]:
    """Accuracy of ``predicted`` (labels of the audit images, by audit index) on the answered
    audit images (``truth``: audit index → label; "can't tell" answers, ``-1``, excluded)."""
    known = {i: y for i, y in truth.items() if y >= 0}
    out: dict[str, object] = {"answered": len(truth), "counted": len(known)}
    if predicted is None or not known:
        out.update(correct=None, accuracy=None, low=None, high=None)
        return out
    correct = sum(int(predicted[i] == y) for i, y in known.items())
    low, high = wilson_interval(correct, len(known))
    out.update(correct=correct, accuracy=correct / len(known), low=low, high=high)
    return out


@dataclass(frozen=True)
class AuditImages:
    """A session's audit sample, drawn before the pool and never part of it.

    Attributes:
        files: each audit image's file (relative to the folder).
        inputs: what the learner sees of them (rows like the pool's inputs).
        picture: the PNG shown for audit image ``j`` (``OSError`` / ``ValueError`` when its
            file can no longer be read).
        known: answers known before the session (audit index → label), recorded at open.
    """

    files: Sequence[str]
    inputs: np.ndarray
    picture: Callable[[int], bytes]
    known: Mapping[int, int] = field(default_factory=dict)


class Audit:
    """The audit of one session: its images, their answers in the store, the estimate."""

    def __init__(self, images: AuditImages, store: LabelStore, n_classes: int) -> None:
        self.images = images
        self.files = list(images.files)
        self.store = store
        self.n_classes = n_classes
        if images.known:
            with store.lock:
                answers = self.answers()
                for j, y in images.known.items():
                    answers.setdefault(j, {"label": int(y), "labeler": "import"})
                self._write(answers)

    def answers(self) -> dict[int, dict[str, Any]]:
        """Audit index → ``{"label", "labeler"}`` of every answered audit image."""
        raw = self.store.get_meta(AUDIT_KEY)
        return {} if raw is None else {int(k): v for k, v in json.loads(raw).items()}

    def _write(self, answers: Mapping[int, dict[str, Any]]) -> None:
        self.store.set_meta(AUDIT_KEY, json.dumps({str(k): v for k, v in answers.items()}))

    def batch(self) -> list[dict[str, Any]]:
        """The audit images nobody answered yet."""
        with self.store.lock:
            answered = self.answers()
        return [{"audit_id": j, "path": p} for j, p in enumerate(self.files)
                if j not in answered]

    def label(self, audit_id: int, label: int, labeler: str) -> dict[str, Any]:
        """Record one audit answer (idempotent; another answer to it is a conflict)."""
        check_labeler(labeler)
        self._check_id(audit_id)
        if label != ABSTAIN and not 0 <= label < self.n_classes:
            raise InvalidAnswer(f"label {label} is not a class: use 0..{self.n_classes - 1}"
                                " or -1 for can't tell")
        with self.store.lock:
            answers = self.answers()
            previous = answers.get(audit_id)
            if previous is not None and previous["label"] != label:
                raise Conflict(f"audit image {audit_id} is already answered with "
                               f"{previous['label']}")
            answers[audit_id] = {"label": label, "labeler": labeler}
            self._write(answers)
        return {"status": "recorded" if previous is None else "already recorded",
                "audit_id": audit_id, "label": label}

    def image_png(self, audit_id: int) -> bytes:
        self._check_id(audit_id)
        try:
            return self.images.picture(audit_id)
        except (OSError, ValueError) as exc:
            raise Gone(f"{self.files[audit_id]} is no longer readable: {exc}") from None

    def _check_id(self, audit_id: int) -> None:
        if not 0 <= audit_id < len(self.files):
            raise NotFound(f"no audit image {audit_id} (0..{len(self.files) - 1})")

    def state(self, learner: Learner | None) -> dict[str, Any]:
        """The sample's size and ``learner``'s accuracy on its answered images."""
        with self.store.lock:
            truth = {j: int(a["label"]) for j, a in self.answers().items()}
        predicted = None
        if learner is not None and len(self.files):
            predicted = learner.predict(self.images.inputs)
        return {"size": len(self.files), **audit_estimate(truth, predicted)}
