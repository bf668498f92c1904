"""An honest estimate: a random audit sample the person labels, never used for training.

Active-learning picks are chosen for being hard, so accuracy on them is biased. The audit
sample is drawn uniformly at random (seeded) from the readable images before anything else and
removed from the pool, so no strategy can pick it and no learner sees it; the current model's
accuracy on the audited images, with a Wilson score interval, estimates its accuracy on the
whole folder.

The audit is interleaved with the labeling: after each batch, the share of the sample that
the share of the budget answered so far calls for is due (:func:`audit_due`), so the estimate
is there from the first batch on, drawn as a curve of the model's accuracy against the labels
it was trained on, and is final once the budget is spent and the rest of the sample labeled.
Every audit answer costs a label on top of the budget.

:class:`Audit` is the session's audit component: the sample's images, their answers and the
estimate, kept in the store's ``meta`` table (never in the events: they are not training
data), so that an export read from the store alone carries them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from activegen.errors import ConfigError
from activegen.models.base import Learner
from activegen.oracles.base import ABSTAIN
from activegen.server.core.errors import Conflict, Gone, InvalidAnswer, NotFound
from activegen.server.core.labeler import check_labeler
from activegen.server.core.schema import AUDIT_CURVE_KEY, AUDIT_FILES_KEY, AUDIT_KEY
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


def audit_due(size: int, answered: int, budget: int, finished: bool) -> int:
    """How many audit images should be answered by now: the sample's share of the budget
    answered so far (rounded up, so the first batch brings the first estimate), all of it once
    the session is finished."""
    if finished or budget <= 0:
        return size
    return min(size, math.ceil(size * min(answered, budget) / budget))


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
    """The audit of one session: its images, their answers in the store, the estimate and its
    curve (see the module docstring).

    Args:
        images: the audit sample.
        store: where the answers, the estimate and its curve are kept (``meta``).
        n_classes: labels are ``0..n_classes-1`` or ``-1`` (can't tell).
    """

    def __init__(self, images: AuditImages, store: LabelStore, n_classes: int) -> None:
        self.images = images
        self.files = list(images.files)
        self.store = store
        self.n_classes = n_classes
        with store.lock:
            if store.get_meta(AUDIT_FILES_KEY) != json.dumps(self.files):
                store.set_meta(AUDIT_FILES_KEY, json.dumps(self.files))
            if images.known:
                answers = self.answers()
                for j, y in images.known.items():
                    answers.setdefault(j, {"label": int(y), "labeler": "import",
                                           "ts": time.time()})
                self._write(answers)

    def answers(self) -> dict[int, dict[str, Any]]:
        """Audit index → ``{"label", "labeler", "ts"}`` of every answered audit image."""
        return read_audit_answers(self.store.get_meta(AUDIT_KEY))

    def _write(self, answers: Mapping[int, dict[str, Any]]) -> None:
        self.store.set_meta(AUDIT_KEY, json.dumps({str(k): v for k, v in answers.items()}))

    def batch(self, due: int) -> list[dict[str, Any]]:
        """The audit images to answer now: as many unanswered ones as ``due`` calls for (see
        :func:`audit_due`), in the sample's order."""
        with self.store.lock:
            answered = self.answers()
        missing = max(0, due - len(answered))
        todo = [j for j in range(len(self.files)) if j not in answered][:missing]
        return [{"audit_id": j, "path": self.files[j]} for j in todo]

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
            if previous is None:
                answers[audit_id] = {"label": label, "labeler": labeler, "ts": time.time()}
                self._write(answers)
        return {"status": "recorded" if previous is None else "already recorded",
                "audit_id": audit_id, "label": label}

    def undo(self, labeler: str) -> int:
        """Take back this labeler's latest audit answer (audit answers are not training data,
        so there is no round to close them); its audit index.

        Raises:
            Conflict: no audit answer of this labeler.
        """
        check_labeler(labeler)
        with self.store.lock:
            answers = self.answers()
            mine = [(a.get("ts") or 0.0, j) for j, a in answers.items()
                    if a["labeler"] == labeler]
            if not mine:
                raise Conflict("nothing to undo: no audit answer of yours")
            _, audit_id = max(mine)
            del answers[audit_id]
            self._write(answers)
        return audit_id

    def image_png(self, audit_id: int) -> bytes:
        self._check_id(audit_id)
        try:
            return self.images.picture(audit_id)
        except (OSError, ValueError) as exc:
            raise Gone(f"{self.files[audit_id]} is no longer readable: {exc}") from None

    def _check_id(self, audit_id: int) -> None:
        if not 0 <= audit_id < len(self.files):
            raise NotFound(f"no audit image {audit_id} (0..{len(self.files) - 1})")

    # -- the estimate ---------------------------------------------------------------------
    def refresh(self, learner: Learner | None, round_: int, n_labels: int) -> None:
        """Measure ``learner`` (fitted in round ``round_`` on ``n_labels`` labels) on every
        audit answer so far and keep it as that round's point of the curve (a later answer in
        the same round replaces the point: the same model, measured on more images)."""
        if learner is None or not len(self.files):
            return
        predicted = learner.predict(self.images.inputs)
        with self.store.lock:
            truth = {j: int(a["label"]) for j, a in self.answers().items()}
            point = {"round": round_, "n_labels": n_labels,
                     **audit_estimate(truth, predicted)}
            curve = [p for p in self.curve() if p["round"] != round_]
            self.store.set_meta(AUDIT_CURVE_KEY, json.dumps(
                sorted([*curve, point], key=lambda p: p["round"])))

    def curve(self) -> list[dict[str, Any]]:
        """The estimate of each round's model on the audit answers known in that round."""
        raw = self.store.get_meta(AUDIT_CURVE_KEY)
        return [] if raw is None else json.loads(raw)

    def state(self, due: int | None = None) -> dict[str, Any]:
        """The sample's size, how many are answered and due, the newest estimate (the current
        model on every answer so far) and the curve."""
        with self.store.lock:
            answered = len(self.answers())
            curve = self.curve()
        return audit_state(len(self.files), answered, curve, due)


def read_audit_answers(raw: str | None) -> dict[int, dict[str, Any]]:
    """The audit answers as stored in ``meta`` (audit index → answer)."""
    return {} if raw is None else {int(k): v for k, v in json.loads(raw).items()}


def audit_state(size: int, answered: int, curve: list[dict[str, Any]],
                due: int | None = None) -> dict[str, Any]:
    """What the page and the exports show of an audit: the newest point of ``curve`` as the
    estimate, with how wide its interval is and how many images would halve it."""
    last = curve[-1] if curve else {"correct": None, "accuracy": None, "low": None,
                                    "high": None, "counted": 0}
    out: dict[str, Any] = {
        "size": size, "answered": answered, "counted": last["counted"],
        "correct": last["correct"], "accuracy": last["accuracy"], "low": last["low"],
        "high": last["high"], "n_labels": last.get("n_labels"),
        "half_width": None if last["low"] is None else (last["high"] - last["low"]) / 2,
        # the interval narrows with the square root of the sample: four times the images
        # halve it
        "to_halve": None if last["low"] is None else 4 * last["counted"],
        "curve": [{k: p[k] for k in ("n_labels", "accuracy", "low", "high", "counted")}
                  for p in curve if p["accuracy"] is not None],
    }
    if due is not None:
        out["due"] = due
    return out
