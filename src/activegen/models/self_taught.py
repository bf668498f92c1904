"""Self-taught learning (Raina et al. 2007), the GAAL paper's transfer-learning baseline.

A sparse-coding basis is learned on the unlabeled pool (scikit-learn's
``MiniBatchDictionaryLearning``), every image is represented by its sparse code on that
basis, and a linear SVM is trained on the codes of the labeled images. The basis is learned
once per pool and settings (cached on disk and in memory), not once per round.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from activegen._cache import ArtifactCache, content_key, data_fingerprint
from activegen._settings import Settings
from activegen.errors import ActivegenError
from activegen.models.base import WithEmbedding, WithMargins, WithProba, proba_from_margins
from activegen.models.capabilities import FitContext

#: Bump when the basis learning changes (invalidates cached bases).
BASIS_VERSION = 1

_BASES: dict[str, Any] = {}


class SelfTaughtSettings(Settings):
    """Settings of the self-taught SVM."""

    n_components: int = Field(64, ge=1, description="atoms of the basis")
    alpha: float = Field(0.5, gt=0, description=(
        "sparsity penalty when learning the basis and when coding images"))
    C: float = Field(1.0, gt=0, description="the SVM's C")
    basis_iterations: int = Field(20, ge=1, description=(
        "passes of the mini-batch dictionary learner over the pool"))


class SelfTaughtSVM(WithProba, WithMargins, WithEmbedding):
    """Linear SVM on sparse codes of a basis learned on the unlabeled pool.

    The engine calls :meth:`prepare` with the pool before the first ``fit``. It has no
    differentiable decision (a code is the solution of a lasso), so synthesis strategies
    refuse it.
    """

    name: ClassVar[str] = "self-taught-svm"
    Settings = SelfTaughtSettings
    settings: SelfTaughtSettings
    basis: Any = None

    def prepare(self, pool_images: np.ndarray, cache_dir: Path | None = None) -> None:
        """Learn (or load) the basis from the pool's images ``float32 [N, C, H, W]``.

        Cached in memory and, with ``cache_dir``, in the one artifact cache
        (:mod:`activegen._cache`): two processes preparing the same basis at once learn it
        once, under its lock, and neither can leave a half-written entry."""
        X = np.asarray(pool_images, dtype=np.float32)
        key = content_key({
            "data": data_fingerprint(X), "n_components": self.settings.n_components,
            "alpha": self.settings.alpha, "iterations": self.settings.basis_iterations,
            "version": BASIS_VERSION})
        if key not in _BASES:
            flat = X.reshape(len(X), -1)
            if cache_dir is None:
                _BASES[key] = self._learn_basis(flat)
            else:
                def build(folder: Path) -> Any:
                    basis = self._learn_basis(flat)
                    (folder / "basis.pkl").write_bytes(pickle.dumps(basis))
                    return basis

                def load(entry: Path) -> Any:
                    # Our own cache file, written above; its SHA-256 is checked first.
                    return pickle.loads((entry / "basis.pkl").read_bytes())

                cache = ArtifactCache(Path(cache_dir), "bases", what="self-taught basis",
                                      main_file="basis.pkl")
                _BASES[key] = cache.load_or_build(key, build, load)[0]
        self.basis = _BASES[key]

    def _learn_basis(self, flat: np.ndarray) -> Any:
        from sklearn.decomposition import MiniBatchDictionaryLearning

        learner = MiniBatchDictionaryLearning(
            n_components=self.settings.n_components, alpha=self.settings.alpha, batch_size=256,
            max_iter=self.settings.basis_iterations, transform_algorithm="lasso_lars",
            transform_alpha=self.settings.alpha, random_state=0)
        return learner.fit(flat)

    def _codes(self, X: np.ndarray) -> np.ndarray:
        if self.basis is None:
            raise ActivegenError("self-taught-svm needs prepare(pool) (its basis is learned on "
                                 "the unlabeled pool) before it is fitted")
        return self.basis.transform(X.reshape(len(X), -1))

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        self.svm = LinearSVC(C=self.settings.C, loss="hinge", dual=True, max_iter=5000,
                             random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.svm.fit(self._codes(X), y)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        d = self.svm.decision_function(self._codes(X))
        if self.n_classes > 2 and d.ndim == 1:  # only two classes labeled so far
            full = np.full((len(X), self.n_classes), -1e6)
            full[:, self.svm.classes_[0]], full[:, self.svm.classes_[1]] = -d, d
            return full
        return d

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict_proba(X).argmax(axis=1)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return proba_from_margins(self._decision_function(X))

    def _embed(self, X: np.ndarray) -> np.ndarray:
        return self._codes(X).astype(np.float32)
