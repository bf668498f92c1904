"""Bayesian acquisition from MC dropout samples: BALD, BatchBALD, mean-std, variation ratios,
MC entropy. A deep ensemble (``ensemble = M`` on a torch learner) gives the same strategies its
``M`` members' outputs as the posterior samples.

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
  earlier picks (the paper's importance estimate). Each greedy step scores every candidate in
  one batched product ``[C, T] @ [T, n·K]`` per chunk (Kirsch et al.'s implementation
  strategy): float64 while exact, float32 on the distinct sampled configurations (rows
  rescaled by each configuration's probability, so nothing underflows).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from activegen._settings import Settings
from activegen.models.capabilities import MCDropout, check_compatible
from activegen.strategies.base import Query, QueryState, Strategy, top_k
from activegen.strategies.subsample import SubsampleSettings, SubsampleSize, restrict

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


def _joint_entropies(prev: torch.Tensor, weights: torch.Tensor, log_scale: torch.Tensor,
                     cand_tnk: torch.Tensor) -> torch.Tensor:
    """Every candidate's joint entropy with the earlier picks in one batched product: ``[n]``.

    ``prev [C, T]`` holds ``Π_i p_t(y_i) / P(c)`` per configuration ``c`` of the earlier picks
    (all ``K^n`` of them, or the distinct ones of ``M`` sampled), scaled by the configuration's
    probability ``P(c) = exp(log_scale[c])`` so that its rows are O(1) whatever the number of
    picks (no underflow, float32 is safe); ``cand_tnk [T, n, K]`` holds the candidates' samples.
    With ``J'(c, k) = P(c, y_x = k) / P(c)``, which sums to 1 over ``k``,
    ``Σ_k P(c, k) log P(c, k) = P(c) (Σ_k J' log J' + log P(c))``, so both estimates are
    ``-Σ_c weights[c] (Σ_k J' log J' + log P(c))``: ``weights = P(c)`` for the exact entropy,
    ``(count of c) / M`` for the importance estimate ``-1/M Σ_m Σ_k P(ŷ_m, k) / P(ŷ_m) ·
    log P(ŷ_m, k)``.
    """
    t, n, k = cand_tnk.shape
    joint = (prev @ cand_tnk.reshape(t, n * k)).div_(t)  # [C, n·K]: J'(c, k)
    # + the smallest normal number: log(0) stays finite and 0 log 0 = 0 (the cheapest way)
    terms = joint.add_(torch.finfo(joint.dtype).tiny).log().mul_(joint)
    per_config = terms.view(len(prev), n, k).sum(dim=2).double() + log_scale[:, None]
    return -(weights @ per_config)


def _sample_configs(samples: np.ndarray, picks: list[int], m: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``m`` configurations ``ŷ`` of ``picks`` drawn from their joint predictive (a pass ``t``
    uniformly, then each ``ŷ_i ~ p_t(x_i)``): their classes ``[m, len(picks)]`` and
    ``Π_i p_t(ŷ_i)`` for every pass ``[m, T]``."""
    t = samples.shape[1]
    passes = rng.integers(t, size=m)
    out = np.ones((m, t))
    ys = np.empty((m, len(picks)), dtype=np.int64)
    for j, i in enumerate(picks):
        p = samples[i][passes]  # [m, K]
        cdf = np.cumsum(p, axis=1)
        y = np.minimum((rng.random((m, 1)) * cdf[:, -1:] > cdf).sum(axis=1), p.shape[1] - 1)
        ys[:, j] = y
        out *= samples[i][:, y].T  # p_t(ŷ_{m,i}) for every t: [m, T]
    return ys, out


def _scaled(prev: np.ndarray, weights: np.ndarray, dtype: torch.dtype
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``prev`` rows divided by their mean over passes (configurations of probability 0 are
    dropped: they add nothing), as ``(prev', weights, log P(c))`` tensors."""
    scale = prev.mean(axis=1)
    keep = scale > 0
    prev, weights, scale = prev[keep], weights[keep], scale[keep]
    return (torch.from_numpy(prev / scale[:, None]).to(dtype), torch.from_numpy(weights),
            torch.from_numpy(np.log(scale)))


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
    samples_tnk = torch.from_numpy(np.ascontiguousarray(samples.transpose(1, 0, 2)))
    configs = np.ones((1, t))  # Π_i p_t(y_i) per configuration; none yet: the empty one
    exact = True
    available = np.ones(n, dtype=bool)
    with torch.inference_mode():
        for _ in range(k):
            exact = exact and configs.shape[0] * n_classes <= max_configs
            if exact or not picks:  # every configuration, weighted by its probability, float64
                cand_all = samples_tnk
                prev, weights, log_scale = _scaled(configs, configs.mean(axis=1),
                                                   torch.float64)
            else:  # distinct sampled configurations, weighted by their counts, in float32
                ys, sampled = _sample_configs(samples, picks, n_configs, rng)
                _, first, counts = np.unique(ys, axis=0, return_index=True, return_counts=True)
                if cand_all.dtype != torch.float32:
                    cand_all = samples_tnk.float()
                prev, weights, log_scale = _scaled(sampled[first], counts / n_configs,
                                                   torch.float32)
            scores = np.full(n, -np.inf)
            rows = np.flatnonzero(available)
            step = max(1, (chunk_size << 14) // (prev.shape[0] * n_classes))  # bounded cells
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                cand = cand_all.index_select(1, torch.from_numpy(chunk))
                scores[chunk] = (_joint_entropies(prev, weights, log_scale, cand).numpy()
                                 - cond[chunk])
            best_value = scores[rows].max()
            tied = rows[scores[rows] == best_value]
            best = int(tied[rng.integers(len(tied))]) if len(tied) > 1 else int(tied[0])
            picks.append(best)
            gains.append(float(best_value - cond[picks[:-1]].sum()))
            available[best] = False
            if exact:  # extend every configuration by the new pick's class
                configs = (configs[:, None, :] * samples[best].T[None, :, :]).reshape(-1, t)
    return np.asarray(picks, dtype=np.int64), np.asarray(gains)


class MCDropoutSettings(SubsampleSettings):
    """How many posterior samples, in chunks of how many points."""

    n_samples: int = Field(20, ge=1, description=(
        "stochastic passes T (20 as in Gal et al. 2017; an ensemble gives its members)"))
    chunk_size: int = Field(512, ge=1, description="pool points per chunk of samples")


class MCDropoutStrategy(Strategy):
    """Ranks the available pool by a function of MC dropout samples (chunked)."""

    name: ClassVar[str] = "mc-dropout"
    requires: tuple[type, ...] = (MCDropout,)
    Settings: ClassVar[type[Settings]] = MCDropoutSettings
    settings: MCDropoutSettings

    @staticmethod
    @abstractmethod
    def score(samples: np.ndarray) -> np.ndarray:
        """Per-point acquisition scores ``[n]`` of MC samples ``[n, T, K]`` (higher = ask)."""

    def candidates(self, state: QueryState, k: int) -> np.ndarray:
        """The available pool indices ranked this round (a random subset with ``subsample``)."""
        return restrict(state, k, self.settings.subsample).available_indices

    def sample_chunks(self, state: QueryState, candidates: np.ndarray) -> Iterator[np.ndarray]:
        learner = state.learner
        check_compatible(self, learner)  # a learner handed in directly, not by a config
        assert isinstance(learner, MCDropout)
        return learner.iter_proba_samples(state.X_pool[candidates], self.settings.n_samples,
                                          state.rng, self.settings.chunk_size)

    def query(self, state: QueryState, k: int) -> Query:
        candidates = self.candidates(state, k)
        scores = np.concatenate([type(self).score(chunk)
                                 for chunk in self.sample_chunks(state, candidates)])
        picks = top_k(scores, candidates, k, state.rng)
        return Query.from_pool(picks, scores=scores[np.searchsorted(candidates, picks)])


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


class BatchBALDSettings(MCDropoutSettings):
    """BatchBALD's joint entropy: exact for small batches, sampled beyond."""

    subsample: SubsampleSize = Field(10_000, ge=1, description=(
        "candidates kept each round (their samples are held in memory); none: all"))
    max_configs: int = Field(4096, ge=1, description=(
        "exact joint entropy while K^n configurations number at most this"))
    n_configs: int = Field(1000, ge=1, description="sampled configurations beyond")


class BatchBALD(MCDropoutStrategy):
    """BatchBALD: a batch of greedily maximal joint mutual information (Kirsch et al. 2019).

    The candidates' samples are held in memory (``subsample·T·K``), so ``subsample`` is
    10,000 by default.
    """

    name: ClassVar[str] = "batchbald"
    Settings = BatchBALDSettings
    settings: BatchBALDSettings
    #: a point's own score: BatchBALD of a batch of one is BALD (the batch itself is greedy)
    score = staticmethod(bald_scores)

    def query(self, state: QueryState, k: int) -> Query:
        candidates = self.candidates(state, k)
        samples = np.concatenate(list(self.sample_chunks(state, candidates)))
        rows, gains = batchbald_select(samples, k, state.rng, self.settings.max_configs,
                                       self.settings.n_configs)
        return Query.from_pool(candidates[rows], scores=gains)
