"""Bayesian acquisition from MC dropout samples: BALD, BatchBALD, mean-std, variation ratios,
MC entropy.

Every measure is a pure function of posterior samples ``p[n, t, k]`` (pool point ``n``,
stochastic pass ``t``, class ``k``); the strategies draw the samples from the learner chunk by
chunk (:meth:`TorchLearner.iter_proba_samples`), so no ``N×T×K`` array larger than a chunk
is built, except by BatchBALD, which keeps the samples of its candidates (``subsample`` bounds
them).

- BALD (Houlsby et al. 2011; Gal et al. 2017): ``I(y; ω) = H(E_t p_t) - E_t H(p_t)``.
- BatchBALD (Kirsch et al. 2019): greedily add the point that maximises the joint mutual
  information ``I(y_1..y_n; ω) = H(y_1..y_n) - Σ_i E_t H(p_t(x_i))``. The joint entropy is
  exact over all ``K^n`` class configurations while they number at most ``max_configs``, and
  estimated beyond from ``n_configs`` configurations sampled from the predictive of the
  earlier picks (the paper's importance estimate).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from activegen.errors import ConfigError
from activegen.models.capabilities import MCDropout
from activegen.strategies.base import Query, QueryState, Strategy, check_batch, top_k

_EPS = 1e-300


def _check_samples(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 3:
        raise ValueError(f"posterior samples must be [N, T, K], got shape {samples.shape}")
    return samples


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, _EPS, 1.0))).sum(axis=axis)


def mc_entropy_scores(samples: np.ndarray) -> np.ndarray:
    """Entropy of the MC mean ``H(E_t p_t)`` (predictive entropy)."""
    return _entropy(_check_samples(samples).mean(axis=1))


def expected_entropy(samples: np.ndarray) -> np.ndarray:
    """``E_t H(p_t)``: the aleatoric part, per point."""
    return _entropy(_check_samples(samples)).mean(axis=1)


def bald_scores(samples: np.ndarray) -> np.ndarray:
    """BALD mutual information ``H(E_t p_t) - E_t H(p_t)`` (≥ 0 up to rounding)."""
    return mc_entropy_scores(samples) - expected_entropy(samples)


def mean_std_scores(samples: np.ndarray) -> np.ndarray:
    """Mean over classes of the standard deviation across passes (Kampffmeyer et al. 2016)."""
    return _check_samples(samples).std(axis=1).mean(axis=1)


def variation_ratios_scores(samples: np.ndarray) -> np.ndarray:
    """``1 - (votes of the modal class) / T`` over the passes' argmax (Freeman 1965)."""
    samples = _check_samples(samples)
    n, t, k = samples.shape
    votes = np.zeros((n, k))
    np.add.at(votes, (np.repeat(np.arange(n), t), samples.argmax(axis=2).reshape(-1)), 1.0)
    return 1.0 - votes.max(axis=1) / t


def _joint_entropies(prev: torch.Tensor, weights: torch.Tensor,
                     cand_tnk: torch.Tensor) -> torch.Tensor:
    """Every candidate's joint entropy with the earlier picks in one batched product.

    ``prev [C, T]`` holds ``Π_i p_t(y_i)`` per configuration ``c`` of the earlier picks (all
    ``K^n`` of them, or ``M`` sampled ones), ``cand_tnk [T, n, K]`` the candidates' samples and
    ``weights [C]`` each configuration's weight: 1 for the exact entropy
    ``-Σ_c Σ_k P(c, k) log P(c, k)``, ``1 / (M P(ŷ_m))`` for the importance estimate
    ``-1/M Σ_m Σ_k P(ŷ_m, k) / P(ŷ_m) · log P(ŷ_m, k)``. Returns ``[n]``.
    """
    t, n, k = cand_tnk.shape
    joint = (prev @ cand_tnk.reshape(t, n * k)).div_(t)  # [C, n·K]: P(c, y_x = k)
    per_config = torch.xlogy(joint, joint).view(len(prev), n, k).sum(dim=2)  # [C, n]
    return -(weights @ per_config)


def _sample_configs(samples: np.ndarray, picks: list[int], m: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``[m, T]``: ``Π_i p_t(ŷ_i)`` for ``m`` configurations ``ŷ`` of ``picks`` drawn from their
    joint predictive (a pass ``t`` uniformly, then each ``ŷ_i ~ p_t(x_i)``)."""
    t = samples.shape[1]
    passes = rng.integers(t, size=m)
    out = np.ones((m, t))
    for i in picks:
        p = samples[i][passes]  # [m, K]
        cdf = np.cumsum(p, axis=1)
        y = np.minimum((rng.random((m, 1)) * cdf[:, -1:] > cdf).sum(axis=1), p.shape[1] - 1)
        out *= samples[i][:, y].T  # p_t(ŷ_{m,i}) for every t: [m, T]
    return out


def batchbald_select(
    samples: np.ndarray,
    k: int,
    rng: np.random.Generator,
    max_configs: int = 4096,
    n_configs: int = 1000,
    chunk_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy BatchBALD: ``k`` rows of ``samples [N, T, K]``, each maximising the joint MI with
    the rows picked before it.

    Returns the picks (in order) and each pick's joint MI ``I(y_1..y_n; ω)`` after adding it.
    Exact ties go to a random row (``rng``).
    """
    samples = _check_samples(samples)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_configs < 1 or n_configs < 1 or chunk_size < 1:
        raise ValueError("max_configs, n_configs and chunk_size must be >= 1")
    n, t, n_classes = samples.shape
    k = min(k, n)
    cond = expected_entropy(samples)
    picks: list[int] = []
    gains: list[float] = []
    with torch.inference_mode():
        samples_tnk = torch.from_numpy(np.ascontiguousarray(samples.transpose(1, 0, 2)))
        prev = torch.ones((1, t), dtype=torch.float64)  # the empty configuration: Π = 1
        weights = torch.ones(1, dtype=torch.float64)
        exact = True
        available = np.ones(n, dtype=bool)
        for _ in range(k):
            exact = exact and prev.shape[0] * n_classes <= max_configs
            if not exact and picks:
                prev = torch.from_numpy(_sample_configs(samples, picks, n_configs, rng))
                weights = 1.0 / (len(prev) * prev.mean(dim=1).clamp_min(_EPS))
            scores = np.full(n, -np.inf)
            rows = np.flatnonzero(available)
            step = max(1, (chunk_size << 14) // (prev.shape[0] * n_classes))  # bounded cells
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                cand = samples_tnk.index_select(1, torch.from_numpy(chunk))
                scores[chunk] = _joint_entropies(prev, weights, cand).numpy() - cond[chunk]
            best_value = scores[rows].max()
            tied = rows[scores[rows] == best_value]
            best = int(tied[rng.integers(len(tied))]) if len(tied) > 1 else int(tied[0])
            picks.append(best)
            gains.append(float(best_value - cond[picks[:-1]].sum()))
            available[best] = False
            if exact:  # extend every configuration by the new pick's class
                prev = (prev[:, None, :] * samples_tnk[:, best, :].T[None, :, :]).reshape(-1, t)
                weights = torch.ones(len(prev), dtype=torch.float64)
    return np.asarray(picks, dtype=np.int64), np.asarray(gains)


def check_mc_dropout_learner(strategy: str, learner: str, params: dict[str, Any]) -> None:
    """Refuse a learner without MC dropout: a torch learner with ``dropout > 0``."""
    from activegen.models import LEARNERS
    from activegen.models.torch_learner import TorchLearner

    if not (issubclass(LEARNERS.get(learner), TorchLearner)
            and float(params.get("dropout", 0.0) or 0.0) > 0.0):
        raise ConfigError(
            f"strategy {strategy!r} needs capability 'mc_dropout': a learner with dropout "
            f"before its last layer; set learner.name = 'small-cnn' or 'resnet18' and "
            f"dropout > 0 (got {learner!r} with dropout = {params.get('dropout', 0.0)})"
        )


class MCDropoutStrategy(Strategy):
    """Ranks the available pool by a function of MC dropout samples (chunked).

    Args:
        n_samples: stochastic passes ``T`` (20 as in Gal et al. 2017 is a common choice).
        subsample: rank only a random subset of this many available points.
        chunk_size: pool points per chunk of samples.
    """

    name: ClassVar[str] = "mc-dropout"
    requires: ClassVar[tuple[type, ...]] = (MCDropout,)

    def __init__(self, n_samples: int = 20, subsample: int | None = None,
                 chunk_size: int = 512) -> None:
        if n_samples < 1 or chunk_size < 1:
            raise ValueError(f"need n_samples >= 1, chunk_size >= 1; got {n_samples}, "
                             f"{chunk_size}")
        if subsample is not None and subsample < 1:
            raise ValueError(f"subsample must be >= 1, got {subsample}")
        self.n_samples = n_samples
        self.subsample = subsample
        self.chunk_size = chunk_size

    @classmethod
    def check_learner(cls, learner: str, params: dict[str, Any]) -> None:
        check_mc_dropout_learner(cls.name, learner, params)

    @staticmethod
    @abstractmethod
    def score(samples: np.ndarray) -> np.ndarray:
        """Per-point acquisition scores ``[n]`` of MC samples ``[n, T, K]`` (higher = ask)."""

    def candidates(self, state: QueryState, k: int) -> np.ndarray:
        candidates = check_batch(state, k)
        if self.subsample is not None and len(candidates) > self.subsample:
            candidates = np.sort(state.rng.choice(candidates, self.subsample, replace=False))
        return candidates

    def sample_chunks(self, state: QueryState, candidates: np.ndarray) -> Iterator[np.ndarray]:
        learner = state.learner
        if not isinstance(learner, MCDropout):
            raise ConfigError(f"strategy {self.name!r} needs a learner with MC dropout, got "
                              f"{type(learner).__name__}")
        return learner.iter_proba_samples(state.X_pool[candidates], self.n_samples,
                                          state.rng, self.chunk_size)

    def query(self, state: QueryState, k: int) -> Query:
        candidates = self.candidates(state, k)
        scores = np.concatenate([type(self).score(chunk)
                                 for chunk in self.sample_chunks(state, candidates)])
        picks = top_k(scores, candidates, k, state.rng)
        return Query.from_pool(picks, scores=scores[np.searchsorted(candidates, picks)])

    def params(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "subsample": self.subsample}


class BALD(MCDropoutStrategy):
    """BALD: the points of largest mutual information between label and weights."""

    name: ClassVar[str] = "bald"
    score = staticmethod(bald_scores)


class MeanStd(MCDropoutStrategy):
    """Mean standard deviation of the class probabilities across MC passes."""

    name: ClassVar[str] = "mean-std"
    score = staticmethod(mean_std_scores)


class VariationRatios(MCDropoutStrategy):
    """Variation ratios: disagreement of the MC passes' predicted classes."""

    name: ClassVar[str] = "variation-ratios"
    score = staticmethod(variation_ratios_scores)


class MCEntropy(MCDropoutStrategy):
    """Entropy of the MC-averaged prediction."""

    name: ClassVar[str] = "mc-entropy"
    score = staticmethod(mc_entropy_scores)


class BatchBALD(MCDropoutStrategy):
    """BatchBALD: a batch of greedily maximal joint mutual information (Kirsch et al. 2019).

    Args:
        max_configs: exact joint entropy while ``K^n`` configurations number at most this.
        n_configs: sampled configurations beyond.
        subsample: candidates kept (their samples are held in memory: ``subsample·T·K``).
    """

    name: ClassVar[str] = "batchbald"
    #: a point's own score: BatchBALD of a batch of one is BALD (the batch itself is greedy)
    score = staticmethod(bald_scores)

    def __init__(self, n_samples: int = 20, subsample: int | None = 10_000,
                 chunk_size: int = 512, max_configs: int = 4096,
                 n_configs: int = 1000) -> None:
        super().__init__(n_samples, subsample, chunk_size)
        if max_configs < 1 or n_configs < 1:
            raise ValueError(f"max_configs and n_configs must be >= 1, got {max_configs}, "
                             f"{n_configs}")
        self.max_configs = max_configs
        self.n_configs = n_configs

    def query(self, state: QueryState, k: int) -> Query:
        candidates = self.candidates(state, k)
        samples = np.concatenate(list(self.sample_chunks(state, candidates)))
        rows, gains = batchbald_select(samples, k, state.rng, self.max_configs,
                                       self.n_configs)
        return Query.from_pool(candidates[rows], scores=gains)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "max_configs": self.max_configs,
                "n_configs": self.n_configs}
