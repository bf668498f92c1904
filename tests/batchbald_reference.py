"""The first BatchBALD implementation (numpy, one float64 ``[C, n, K]`` array per chunk and
step), kept verbatim as the reference the vectorised ``batchbald_select`` is compared with
(tests/test_bayesian.py) and timed against (benchmarks/bench_bayesian.py --reference).

Copied from src/activegen/strategies/bayesian.py at commit a7ae043; only the input check and
the expected-entropy helper are inlined.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-300


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, _EPS, 1.0))).sum(axis=axis)


def _joint(prev: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``P(y_prev = c, y_x = k) = 1/T Σ_t prev[c, t] p_t(x, k)`` as one matrix product:
    ``[C, n, K]``."""
    n, t, k = cand.shape
    flat = np.ascontiguousarray(cand.transpose(1, 0, 2)).reshape(t, n * k)
    return (prev @ flat).reshape(len(prev), n, k) / t


def _joint_entropy_exact(prev: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """``H(y_prev, y_c)`` per candidate: ``prev [C, T]`` holds ``Π_i p_t(y_i)`` for every
    configuration of the earlier picks, ``cand [n, T, K]`` the candidates' samples."""
    joint = _joint(prev, cand)  # [C, n, K]
    return _entropy(joint.transpose(1, 0, 2).reshape(len(cand), -1))


def _joint_entropy_sampled(prev: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Importance estimate of the joint entropy: ``prev [M, T]`` holds ``Π_i p_t(ŷ_{m,i})`` for
    ``M`` configurations drawn from ``P(y_prev)``; ``H ≈ -1/M Σ_m Σ_k P(ŷ_m, k)/P(ŷ_m) ·
    log P(ŷ_m, k)``."""
    p_prev = prev.mean(axis=1)  # [M]
    joint = _joint(prev, cand)  # [M, n, K]
    ratio = joint / np.maximum(p_prev, _EPS)[:, None, None]
    return -(ratio * np.log(np.clip(joint, _EPS, 1.0))).sum(axis=2).mean(axis=0)


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


def batchbald_select_reference(
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
    samples = np.asarray(samples, dtype=np.float64)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_configs < 1 or n_configs < 1 or chunk_size < 1:
        raise ValueError("max_configs, n_configs and chunk_size must be >= 1")
    n, t, n_classes = samples.shape
    k = min(k, n)
    cond = _entropy(samples).mean(axis=1)
    picks: list[int] = []
    gains: list[float] = []
    prev = np.ones((1, t))  # the empty configuration: Π over no picks = 1
    exact = True
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        exact = exact and prev.shape[0] * n_classes <= max_configs
        if not exact and picks:
            prev = _sample_configs(samples, picks, n_configs, rng)
        estimate = _joint_entropy_exact if exact else _joint_entropy_sampled
        scores = np.full(n, -np.inf)
        rows = np.flatnonzero(available)
        step = max(1, (chunk_size << 14) // (prev.shape[0] * n_classes))  # bounded cells
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            scores[chunk] = estimate(prev, samples[chunk]) - cond[chunk]
        best_value = scores[rows].max()
        tied = rows[scores[rows] == best_value]
        best = int(tied[rng.integers(len(tied))]) if len(tied) > 1 else int(tied[0])
        picks.append(best)
        gains.append(float(best_value - cond[picks[:-1]].sum()))
        available[best] = False
        if exact:  # extend every configuration by the new pick's class
            prev = (prev[:, None, :] * samples[best].T[None, :, :]).reshape(-1, t)
    return np.asarray(picks, dtype=np.int64), np.asarray(gains)
