"""t-SNE of a core-set selection with and without VAE features (the VAE paper's Figs 5 and 6).

Protocol (Godwin et al. 2022): train the task model on a random initial labeled set (1,000
ChestMNIST images there), draw a random fraction (5%) of the unlabeled pool as candidates, let
core-set pick a batch (100) among them in the task features ``T_f``, and again in
``[T_f ⌢ alpha·V]``; embed the labeled points, the candidates and the picks with t-SNE (in
the feature space each strategy used) and plot them. The sizes are arguments, to scale the
protocol to small pools.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
from sklearn.manifold import TSNE

from activegen._atomic import atomic_write_bytes
from activegen.engine import ActiveLearner, choose_batch
from activegen.errors import ConfigError
from activegen.experiments.config import ExperimentConfig
from activegen.experiments.progress import phase
from activegen.experiments.runner import (
    cache_dir,
    load_experiment_data,
    make_learner_factory,
    resolve_device,
)
from activegen.generative.vae import VAESettings
from activegen.loop import derive_seed, initial_labeled_indices
from activegen.strategies import PrepareContext
from activegen.strategies.coreset import CoreSet
from activegen.strategies.vae_augmented import VAECoreSet


@dataclass
class TSNEResult:
    """What was plotted: pool indices of the labeled set, the candidates and each pick set."""

    labeled: np.ndarray
    candidates: np.ndarray
    picks_plain: np.ndarray
    picks_vae: np.ndarray
    images: list[Path]
    #: mean L2 norm of the task features and of alpha·VAE features of the plotted points
    task_norm: float = 0.0
    vae_norm: float = 0.0


def _plot(points: np.ndarray, n_labeled: int, picked: np.ndarray, title: str) -> bytes:
    """Scatter: labeled (blue), unlabeled candidates (grey), selected (red)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lab, cand = points[:n_labeled], points[n_labeled:]
    ax.scatter(cand[:, 0], cand[:, 1], s=6, c="0.7", label="unlabeled")
    ax.scatter(lab[:, 0], lab[:, 1], s=6, c="tab:blue", label="labeled")
    sel = cand[picked]
    ax.scatter(sel[:, 0], sel[:, 1], s=18, c="tab:red", marker="x", label="selected")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def tsne_selection(
    config: ExperimentConfig,
    out_dir: Path,
    n_labeled: int = 1000,
    candidate_fraction: float = 0.05,
    n_picks: int = 100,
    alpha: float = 1.0,
    seed: int = 0,
    vae: VAESettings | None = None,
) -> TSNEResult:
    """Make the two t-SNE pictures for ``config``'s data and learner; returns what was drawn.

    The learner is the engine's round-0 learner of a run whose initial set is the labeled
    set, and each selection is the engine's checked choice on that state with only the
    candidates available."""
    pool, _ = load_experiment_data(config)
    if not 0 < candidate_fraction <= 1:
        raise ConfigError(f"candidate_fraction must be in (0, 1], got {candidate_fraction}")
    if n_labeled >= len(pool):
        raise ConfigError(f"n_labeled ({n_labeled}) must be below the pool ({len(pool)})")
    n_candidates = round(candidate_fraction * (len(pool) - n_labeled))
    if n_picks < 1 or n_picks > n_candidates:
        raise ConfigError(f"n_picks ({n_picks}) must be in 1..{n_candidates} (the candidates)")
    out_dir = Path(out_dir)
    X = pool.to_float()
    labeled = initial_labeled_indices(pool.y, n_labeled, seed)
    rng = np.random.default_rng(derive_seed(seed, 0x75E))
    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    candidates = np.sort(rng.choice(unlabeled, n_candidates, replace=False))
    device = resolve_device(config.device)
    plain = CoreSet(device=device)
    augmented = VAECoreSet(device=device, alpha=alpha,
                           vae=vae if vae is not None else VAESettings())
    phase("training (or loading) the VAE")
    augmented.prepare(PrepareContext(pool=pool, cache_dir=cache_dir(config, out_dir),
                                     device=device))
    engine = ActiveLearner(X, pool.n_classes, make_learner_factory(config, pool.n_classes),
                           plain, seed=seed, initial=(labeled, pool.y[labeled]))
    phase(f"fitting the learner on {len(labeled)} labeled images")
    engine.fit()
    hidden = np.ones(len(pool), dtype=bool)
    hidden[candidates] = False  # only the candidates may be picked

    def state():  # the engine's state of round 0, the candidates alone available
        s = engine.query_state()
        s.queried = hidden.copy()
        return s

    picks = {}
    images = []
    order = np.concatenate([labeled, candidates])
    for key, strategy, title in (
        ("plain", plain, f"core-set in task features T_f ({n_picks} picks)"),
        ("vae", augmented, f"core-set in [T_f, {alpha:g}·VAE] ({n_picks} picks)"),
    ):
        s = state()
        chosen = choose_batch(strategy, s, n_picks, seed).indices
        picks[key] = chosen
        feats = strategy.features(s, X[order])
        phase(f"t-SNE of {len(order)} points")
        points = TSNE(n_components=2, init="pca", random_state=seed,
                      perplexity=min(30.0, (len(order) - 1) / 3)).fit_transform(feats)
        picked_rows = np.searchsorted(candidates, chosen)
        path = out_dir / f"tsne_coreset_{key}.png"
        atomic_write_bytes(path, _plot(points, len(labeled), picked_rows, title))
        images.append(path)
    s = state()
    task_norm = float(np.linalg.norm(plain.features(s, X[order]), axis=1).mean())
    vae_norm = float(np.linalg.norm(augmented.feature_map.vae_part(s, X[order]),
                                    axis=1).mean())
    return TSNEResult(labeled, candidates, picks["plain"], picks["vae"], images, task_norm,
                      vae_norm)
