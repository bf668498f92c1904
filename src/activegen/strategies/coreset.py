"""Feature-space diversity strategies: core-set k-center greedy and MedAL.

Core-set (Sener & Savarese 2018) picks, one at a time, the unlabeled point farthest from its
nearest centre (labeled points and earlier picks); MedAL (Smailagic et al. 2018) picks, among
the highest-entropy candidates, the point of largest *mean* distance to the labeled set.

``kcenter_greedy`` is exact and fast without an N×N matrix (see its docstring):

1. the initial nearest-centre distances come from chunked float32 matrix products (on CUDA
   when asked), with a rigorous float32 rounding bound; every centre that the bound cannot rule
   out is re-measured in float64, so the stored minima are the float64 ones;
2. the greedy picks are *lazy*: a point's nearest-centre distance only shrinks as centres are
   added, so a stored value is an upper bound. The point with the largest bound is brought up to
   date against the centres added since it was last measured (a few vectors, not N·d features);
   if it still beats every other bound it is the exact argmax. Points that the bounds prove
   cannot win are never touched again, which is what lets this beat a loop that streams all
   N·d features per pick.

No library offers an exact, lazy k-center greedy on bounded memory (scikit-activeml and baal
recompute or stream every distance per pick), hence the hand-written loop.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import Field, field_validator

from activegen._device import resolve_device as resolve_device_name
from activegen._settings import BuildContext, Settings
from activegen.features.settings import check_spec
from activegen.models.capabilities import Probabilistic
from activegen.strategies.base import PrepareContext, Query, QueryState, Strategy
from activegen.strategies.feature_maps import (
    LAYER_SOURCES,
    BackboneImageSize,
    InputFeatures,
    SelfSupervisedTable,
    SourceFeatures,
    TaskFeatures,
    is_layer_source,
)
from activegen.strategies.subsample import SubsampleSettings, restrict
from activegen.strategies.uncertainty import entropy_scores

ArrayLike = np.ndarray | torch.Tensor

#: Float32 gemm output cells per chunk (64 MiB), so that memory stays bounded for any N.
_CHUNK_CELLS = 1 << 24
#: At most this many rows per chunk (bounds the float64 copies of the rows refined exactly).
_CHUNK_ROWS = 8192


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when present, else CPU (checked by :mod:`activegen._device`)."""
    if isinstance(device, torch.device):
        return device
    return torch.device(resolve_device_name(device))


def _as_numpy_features(features: ArrayLike) -> np.ndarray:
    """Features as a 2-D numpy array (float32 or float64), validated."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features)
    if array.ndim != 2:
        raise ValueError(f"features must be a 2-D array [N, d], got shape {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):  # no copy
        raise ValueError("features contain NaN or infinite values")
    return array


def _index_array(indices: Any, n: int, what: str) -> np.ndarray:
    array = np.asarray(indices if indices is not None else [], dtype=np.int64).reshape(-1)
    if len(array) and (array.min() < 0 or array.max() >= n):
        raise IndexError(f"{what} indices must lie in [0, {n}), got {array.min()}..{array.max()}")
    return array


def _unit_roundoff(device: torch.device) -> float:
    """Unit roundoff of a float32 matrix product on ``device`` (TF32/bf16 when torch allows it)."""
    if device.type == "cuda":
        precision = torch.get_float32_matmul_precision()
        if precision == "high" or torch.backends.cuda.matmul.allow_tf32:
            return 2.0**-11
        if precision == "medium":
            return 2.0**-8
    return 2.0**-24


def squared_distances_f64(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Exact-as-float64 ``||p - c||²`` of each row of ``points`` to one ``centre`` (direct form).

    The direct difference form has no cancellation, unlike ``||p||² + ||c||² - 2p·c``.
    """
    diff = np.asarray(points, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    return np.einsum("ij,ij->i", diff, diff)


class _CentreBlock:
    """A block of centres, prepared once for exact nearest-centre distances of many points.

    On centred data, ``D'(x, c) = ||c||² - 2 x·c`` (float32, one gemm) is within
    ``E_x = κ (||x|| + max_c ||c||)²`` of its true value, with ``κ = 2 (d + 8) u``: twice the
    classical dot-product bound γ_d plus the float32 casts, norms and additions. A centre
    whose ``D'`` exceeds the row minimum by more than ``2 E_x`` cannot be the nearest, so only
    the remaining pairs (usually one per row) are re-measured in float64, directly: the result
    is the float64 minimum, at the cost of a float32 gemm.
    """

    def __init__(self, X: np.ndarray, centres: np.ndarray, mean: np.ndarray, scale: float,
                 device: torch.device) -> None:
        self.device = device
        self.kappa = 2.0 * (X.shape[1] + 8) * _unit_roundoff(device)
        self.mean = torch.from_numpy(np.asarray(mean, dtype=X.dtype)).to(device)
        self.scale = scale
        self.C64 = X[centres].astype(np.float64)
        self.C32 = self._centred32(X, centres)
        self.c_sq32 = (self.C32 * self.C32).sum(dim=1)
        self.c_norm_max = float(self.c_sq32.max().sqrt())

    def _centred32(self, X: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """``float32((X[rows] - mean) · scale)``, centred in the input's precision.

        ``scale`` is a power of two (exact) that keeps squares far from float32 overflow; the
        screen's choices do not depend on it, and the exact distances use the raw rows.
        """
        return ((torch.from_numpy(X[rows]).to(self.device) - self.mean) * self.scale).float()

    def __len__(self) -> int:
        return len(self.C64)

    def min_sq_distances(self, X: np.ndarray, rows: np.ndarray,
                         chunk_size: int | None = None) -> np.ndarray:
        """Float64 ``min_c ||X[r] - c||²`` for each of ``rows``, in bounded chunks.

        The exact distances use the raw rows in float64 (not centred ones), so that they
        equal a plain float64 computation; centring only serves the float32 screen.
        """
        out = np.empty(len(rows))
        step = chunk_size or max(1, min(_CHUNK_ROWS, _CHUNK_CELLS // len(self)))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            P32 = self._centred32(X, chunk)
            p_sq = (P32 * P32).sum(dim=1)
            slack = (p_sq.sqrt() + self.c_norm_max).square_().mul_(2.0 * self.kappa)
            dist = torch.addmm(self.c_sq32.expand(len(chunk), -1), P32, self.C32.T, alpha=-2.0)
            threshold = dist.min(dim=1).values + slack
            row_of, centre_of = (
                t.cpu().numpy() for t in torch.nonzero(dist <= threshold[:, None], as_tuple=True)
            )
            del dist
            best = np.full(len(chunk), np.inf)
            for at in range(0, len(row_of), step):  # usually about one pair per row
                r, c = row_of[at : at + step], centre_of[at : at + step]
                diff = X[chunk[r]].astype(np.float64) - self.C64[c]
                np.minimum.at(best, r, np.einsum("ij,ij->i", diff, diff))
            out[start : start + len(chunk)] = best
        return out


#: Fractions of the initial centres in each lazy level (see ``kcenter_greedy``).
_LEVEL_FRACTIONS = (1 / 8, 1 / 8, 3 / 4)
#: Fewer initial centres than this: one level (the gemm is cheap anyway).
_MIN_CENTRES_FOR_LEVELS = 256
#: Points refined together when they reach the top of the heap with a partial bound.
_REFINE_BATCH = 1024


def _centre_levels(labeled: np.ndarray) -> list[np.ndarray]:
    """Split the initial centres into lazy levels (a fixed-seed shuffle, so any input order
    gives representative blocks; the picks do not depend on it, only the speed)."""
    if len(labeled) < _MIN_CENTRES_FOR_LEVELS:
        return [labeled] if len(labeled) else []
    shuffled = np.random.default_rng(0).permutation(labeled)
    cuts = np.cumsum([round(f * len(labeled)) for f in _LEVEL_FRACTIONS[:-1]])
    return [block for block in np.split(shuffled, cuts) if len(block)]


def kcenter_greedy(
    features: ArrayLike,
    labeled: np.ndarray,
    k: int,
    candidates: np.ndarray | None = None,
    device: str = "cpu",
    chunk_size: int | None = None,
) -> np.ndarray:
    """Greedy k-center: ``k`` candidates, each farthest from the centres chosen before it.

    Args:
        features: ``[N, d]`` points (numpy or torch, any device).
        labeled: indices of the initial centres (may be empty).
        k: how many to pick; fewer when fewer candidates remain.
        candidates: indices that may be picked (default: every index not in ``labeled``);
            ``labeled`` indices among them are dropped.
        device: where the float32 distance products run (``"cpu"``, ``"cuda"``, ``"auto"``).
        chunk_size: rows per distance chunk (default: about 64 MiB of float32 per chunk).

    Returns:
        ``int64 [min(k, |candidates|)]`` picks in pick order. Each pick maximises the float64
        squared L2 distance to its nearest centre (the labeled ones and every earlier pick;
        squared or not gives the same argmax); exact ties go to the lowest index. With no centre
        at all, the first pick is the lowest candidate index.

    How: a candidate's distance to its nearest centre only shrinks as centres are added, so
    any value measured against a *subset* of the centres is an upper bound. Every candidate
    starts with its exact distance to a random eighth of the labeled centres; a max-heap holds
    these bounds. The top candidate is measured against the next block of labeled centres
    (batched with its neighbours at the top), then against the picks made since its last
    measurement; once it is fully up to date and still on top, no other candidate can beat
    it, so it is the exact greedy pick. Candidates whose bound falls below the picks never
    see the other centres at all. Memory is O(N·d) at most (no N×N matrix): one chunk of
    distances at a time, then O(N) bounds.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    X = _as_numpy_features(features)
    n = len(X)
    labeled = np.unique(_index_array(labeled, n, "labeled"))
    if candidates is None:
        cand = np.setdiff1d(np.arange(n, dtype=np.int64), labeled, assume_unique=True)
    else:
        cand = np.setdiff1d(np.unique(_index_array(candidates, n, "candidates")), labeled)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    k = min(k, len(cand))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    torch_device = resolve_device(device)
    # The centring shift only sharpens the float32 screen (any shift is exact): a sample's mean.
    used = np.concatenate([labeled, cand])
    mean = X[used[:: max(1, len(used) // 4096)]].mean(axis=0, dtype=np.float64)
    extent = float(max(X.max() - mean.min(), mean.max() - X.min()))  # bounds |x - mean|
    scale = 2.0 ** -math.floor(math.log2(extent)) if extent > 0 else 1.0

    levels = [_CentreBlock(X, block, mean, scale, torch_device)
              for block in _centre_levels(labeled)]
    bound = np.full(len(cand), np.inf)
    if levels:
        bound = levels[0].min_sq_distances(X, cand, chunk_size)
    # ``bound[j]``: exact float64 min distance of cand[j] to the first ``level[j]`` blocks of
    # labeled centres and the first ``stamp[j]`` picks; it only shrinks as more are measured.
    level = np.full(len(cand), min(1, len(levels)), dtype=np.int64)
    stamp = np.zeros(len(cand), dtype=np.int64)
    heap = [(-b, int(i), j) for j, (b, i) in enumerate(zip(bound.tolist(), cand.tolist()))]
    heapq.heapify(heap)
    picked_rows = np.empty((k, X.shape[1]), dtype=np.float64)
    picks: list[int] = []
    while len(picks) < k:
        neg, index, j = heapq.heappop(heap)
        n_picked = len(picks)
        if level[j] < len(levels):
            # Measure the top candidates with partial bounds against their next block, in
            # batches (one gemm each): the entries just below the top are usually needed next.
            batch, aside = [(neg, index, j)], []
            while heap and len(batch) < _REFINE_BATCH and len(aside) < 4 * _REFINE_BATCH:
                entry = heapq.heappop(heap)
                (batch if level[entry[2]] < len(levels) else aside).append(entry)
            for entry in aside:
                heapq.heappush(heap, entry)
            js = np.array([entry[2] for entry in batch])
            for lv in np.unique(level[js]):
                group = js[level[js] == lv]
                fresh = levels[lv].min_sq_distances(X, cand[group], chunk_size)
                bound[group] = np.minimum(bound[group], fresh)
                level[group] = lv + 1
            for _, i, jj in batch:
                heapq.heappush(heap, (-bound[jj], i, jj))
            continue
        if stamp[j] < n_picked:
            new = squared_distances_f64(picked_rows[stamp[j] : n_picked], X[index]).min()
            stamp[j] = n_picked
            if new < bound[j]:
                bound[j] = new
                if heap and (-new, index) > heap[0][:2]:
                    heapq.heappush(heap, (-new, index, j))
                    continue
        picked_rows[n_picked] = X[index]
        picks.append(index)
    return np.asarray(picks, dtype=np.int64)


#: where a feature-space strategy may measure distances
FEATURE_SPACES: tuple[str, ...] = ("embedding", "input", "pixels", *LAYER_SOURCES)


class FeatureSpaceSettings(SubsampleSettings):
    """Where a feature-space strategy measures distances."""

    features: str = Field("embedding", description=(
        "embedding: the learner's features T_f(x); input (or pixels): the examples as "
        "given, feature rows or flattened images; self-supervised (SimCLR trained on the "
        "pool's images, cached), timm:NAME[@weights], open_clip:ARCH[:TAG][@weights] or "
        "torchvision:NAME[@weights] (a local pretrained backbone): a source of the feature "
        "layer, fitted once on the pool. All but embedding need no learner, so they can be a "
        "cold start"))
    self_supervised: SelfSupervisedTable
    image_size: BackboneImageSize = None

    @field_validator("features")
    @classmethod
    def _known_space(cls, value: str) -> str:
        if is_layer_source(value):
            return check_spec(value)
        if value not in FEATURE_SPACES:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SPACES)}, got "
                             f"{value!r}")
        return value


class _FeatureStrategy(Strategy):
    """Shared parts of feature-space strategies: the feature map and the candidate set.

    ``device`` is where distances are computed (``"auto"``: CUDA when present; the build
    context's device from a config)."""

    Settings: ClassVar[type[Settings]] = FeatureSpaceSettings
    settings: FeatureSpaceSettings
    #: what the strategy reads from the learner besides its feature map's needs
    reads: ClassVar[tuple[type, ...]] = ()

    def __init__(self, settings: Any = None, *, device: str = "auto", **values: Any) -> None:
        super().__init__(settings, **values)
        self.device = device
        #: where distances are measured (:meth:`with_features` sets another map)
        self.feature_map: TaskFeatures = self.build_feature_map()

    def build_feature_map(self) -> TaskFeatures:
        """The feature map of the settings (a composition such as ``vae-coreset`` builds
        its own)."""
        features = self.settings.features
        if is_layer_source(features):
            return SourceFeatures(features, self.settings.self_supervised,
                                  self.settings.image_size, owner=self.name)
        return InputFeatures() if features in ("input", "pixels") else TaskFeatures()

    def prepare(self, context: PrepareContext) -> None:
        """Prepare the feature map (a source of the feature layer is fitted on the pool;
        nothing to do for the learner's embedding or the examples as given)."""
        self.feature_map.prepare(context)

    def provenance(self) -> list[dict[str, Any]]:
        """A feature-layer source's id, once prepared (see :class:`SourceFeatures`)."""
        if isinstance(self.feature_map, SourceFeatures):
            return self.feature_map.provenance()
        return []

    @property
    def requires(self) -> tuple[type, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys((*self.feature_map.requires, *self.reads)))

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        return cls(settings, device=context.device)

    def with_features(self, feature_map: TaskFeatures) -> Self:
        """Measure distances in ``feature_map`` instead (returns this strategy)."""
        self.feature_map = feature_map
        return self

    def features(self, state: QueryState, X: np.ndarray) -> np.ndarray:
        """The feature vectors distances are measured in (the feature map's)."""
        return self.feature_map(state, X)

    def pool_features(self, state: QueryState, indices: np.ndarray) -> np.ndarray:
        """The feature vectors of the pool points ``indices`` (the feature map's)."""
        return self.feature_map.pool(state, indices)

    def _labeled_features(self, state: QueryState) -> np.ndarray | None:
        """Features of every labeled image (pool points, then synthesized extras); None if none."""
        parts = []
        if len(state.labeled_indices):
            parts.append(self.pool_features(state, state.labeled_indices))
        if state.X_extra is not None and len(state.X_extra):
            parts.append(self.features(state, state.X_extra))
        return np.concatenate([np.asarray(p) for p in parts]) if parts else None


class CoreSet(_FeatureStrategy):
    """Core-set (Sener & Savarese 2018): greedy k-center in the learner's feature space.

    Labeled pool points and labeled synthesized images (``state.X_extra``) are the initial
    centres; each pick is the candidate farthest from its nearest centre, then joins them.
    ``subsample`` ranks only a random subset of the unlabeled points (LL4AL ranks 10,000).

    Distances are measured in ``feature_map`` (the learner's embedding by default; the
    examples as given with ``features = "input"``; a feature-layer source such as
    ``"self-supervised"`` through :class:`~activegen.strategies.feature_maps.SourceFeatures`;
    ``vae-coreset`` is this with :class:`~activegen.strategies.feature_maps.VAEAugmented`).
    """

    name: ClassVar[str] = "coreset"

    def query(self, state: QueryState, k: int) -> Query:
        state = restrict(state, k, self.settings.subsample)
        candidates = state.available_indices
        labeled = self._labeled_features(state)
        unlabeled = np.asarray(self.pool_features(state, candidates))
        feats = unlabeled if labeled is None else np.concatenate([labeled, unlabeled])
        offset = 0 if labeled is None else len(labeled)
        if offset == 0:  # nothing labeled: a random first centre instead of index order
            first = int(state.rng.integers(len(candidates)))
            rest = kcenter_greedy(feats, np.array([first]), k - 1, device=self.device) \
                if k > 1 else np.empty(0, dtype=np.int64)
            local = np.concatenate([[first], rest]).astype(np.int64)
        else:
            local = kcenter_greedy(
                feats, np.arange(offset), k,
                candidates=np.arange(offset, offset + len(candidates)), device=self.device,
            ) - offset
        return Query.from_pool(candidates[local])


def medal_select(
    features_unlabeled: ArrayLike,
    features_labeled: ArrayLike,
    k: int,
    squared: bool = False,
    chunk_size: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """MedAL's diversity step: ``k`` rows of ``features_unlabeled``, each of largest mean
    distance to the labeled rows plus the earlier picks.

    The sum of distances per candidate is kept and grows by one distance per pick, so each
    pick costs O(M·d) and no M×M matrix is built (the M×L sums go in chunks). ``squared=False``
    (default) averages L2 distances as the MedAL paper's text and code do; ``squared=True``
    averages squared L2 distances as the VAE-augmentation paper's equation writes, which
    reduces to "farthest from the centroid" (``mean ||u - l||² = ||u - μ||² + const``). Float64
    throughout, on ``device``. Exact ties go to the lowest row; with no labeled rows every
    first score is 0, so row 0 is picked first.

    Returns:
        ``int64`` row indices into ``features_unlabeled``, in pick order.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    torch_device = resolve_device(device)
    U = torch.from_numpy(_as_numpy_features(features_unlabeled)).to(torch_device, torch.float64)
    labeled = (features_labeled.detach().cpu().numpy()
               if isinstance(features_labeled, torch.Tensor) else np.asarray(features_labeled))
    if labeled.size == 0:
        labeled = np.empty((0, U.shape[1]))
    if labeled.ndim != 2 or labeled.shape[1] != U.shape[1]:
        raise ValueError(f"features_labeled must be [L, {U.shape[1]}] like the unlabeled "
                         f"features, got shape {labeled.shape}")
    L = torch.from_numpy(_as_numpy_features(labeled)).to(torch_device, torch.float64)
    k = min(k, len(U))
    u_sq = (U * U).sum(dim=1)
    l_sq = (L * L).sum(dim=1)
    totals = torch.zeros(len(U), dtype=torch.float64, device=torch_device)
    step = chunk_size or max(1, _CHUNK_CELLS // max(1, len(L)))
    for start in range(0, len(U), step):
        sq = torch.addmm(u_sq[start : start + step, None] + l_sq[None, :],
                         U[start : start + step], L.T, alpha=-2.0).clamp_(min=0.0)
        totals[start : start + step] = (sq if squared else sq.sqrt_()).sum(dim=1)
    picks: list[int] = []
    for _ in range(k):
        best = int(torch.argmax(totals))  # first maximum: lowest row on exact ties
        picks.append(best)
        sq = torch.addmv(u_sq + u_sq[best], U, U[best], alpha=-2.0).clamp_(min=0.0)
        totals += sq if squared else sq.sqrt_()
        totals[picks] = -torch.inf
    return np.asarray(picks, dtype=np.int64)


class MedALOptions(SubsampleSettings):
    """MedAL's entropy pre-filter and distance."""

    top_m: int | None = Field(None, ge=1, description=(
        "size of the entropy pre-filter (wins over prefilter_fraction)"))
    prefilter_fraction: float = Field(0.1, gt=0, le=1, description=(
        "fraction of the candidates kept by the pre-filter"))
    squared: bool = Field(False, description="average squared L2 distances instead of L2")


class MedALSettings(MedALOptions, FeatureSpaceSettings):
    """MedAL's pre-filter and distance, and where distances are measured."""


class MedAL(_FeatureStrategy):
    """MedAL (Smailagic et al. 2018): entropy pre-filter, then largest mean feature distance.

    The ``top_m`` highest-entropy candidates (or ``prefilter_fraction`` of them, at least
    ``k``) are kept; among those each pick maximises the mean L2 distance (``squared``:
    squared L2) to the labeled set, which then includes it.
    """

    name: ClassVar[str] = "medal"
    reads: ClassVar[tuple[type, ...]] = (Probabilistic,)
    Settings = MedALSettings
    settings: MedALSettings

    def prefilter_size(self, n_candidates: int, k: int) -> int:
        """How many highest-entropy candidates the diversity step sees."""
        m = self.settings.top_m if self.settings.top_m is not None else math.ceil(
            self.settings.prefilter_fraction * n_candidates)
        return min(n_candidates, max(m, k))

    def query(self, state: QueryState, k: int) -> Query:
        state = restrict(state, k, self.settings.subsample)
        candidates = state.available_indices
        entropy = entropy_scores(state.learner.predict_proba(state.X_pool[candidates]))
        m = self.prefilter_size(len(candidates), k)
        # Highest entropy first; exact ties by lowest index (stable sort on -entropy).
        kept = np.sort(np.argsort(-entropy, kind="stable")[:m])
        shortlist = candidates[kept]
        unlabeled = self.pool_features(state, shortlist)
        labeled = self._labeled_features(state)
        if labeled is None:
            labeled = np.empty((0, np.asarray(unlabeled).shape[1]))
        rows = medal_select(unlabeled, labeled, k, squared=self.settings.squared,
                            device=self.device)
        return Query.from_pool(shortlist[rows], scores=entropy[kept][rows])
