"""GAAL (Zhu & Bento 2017) and the strategies built on a generator trained on the pool.

Every strategy here trains (or loads from the cache) one DCGAN on the unlabeled pool
(:class:`GeneratorStrategy`, settings :class:`~activegen.generative.training.GeneratorSettings`
under ``generator``); every run of an experiment shares it. ``simple-gan`` labels random
samples ``G(z)`` (the paper's baseline); ``gaal`` synthesizes the batch on the learner's
decision boundary (:func:`~activegen.strategies.synthesis.synthesize`, settings
:class:`~activegen.strategies.synthesis.SynthesisSettings` under ``synthesis``);
``gaal-retrieve`` labels real pool images near what the synthesis found; ``mixed`` alternates
two strategies (the paper's mixed scheme). A config's top-level ``[generator]`` and
``[synthesis]`` tables are the defaults of these strategies' own tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import Field, field_validator

from activegen._settings import BuildContext, Settings, over, shared_table
from activegen.generative.cache import (
    CachedGenerator,
    load_or_train,
    shared_cache_dir,
    trained_on,
)
from activegen.generative.dcgan import Generator
from activegen.generative.training import GeneratorSettings
from activegen.models.capabilities import Differentiable, DifferentiableFeatures
from activegen.strategies.base import (
    STRATEGIES,
    PrepareContext,
    Query,
    QueryState,
    Strategy,
    check_batch,
)
from activegen.strategies.inversion import invert, nearest_boundary
from activegen.strategies.labelability import Labelability
from activegen.strategies.synthesis import Synthesis, SynthesisSettings, margin, synthesize

#: random starts of each pool image's inversion (minimal edits)
INVERT_STARTS = 2


def _torch_seed(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))


def _tensor(images: np.ndarray | None) -> torch.Tensor | None:
    return None if images is None else torch.from_numpy(np.asarray(images, dtype=np.float32))


class GeneratorStrategySettings(Settings):
    """The generator a strategy trains on the pool (defaults: the config's ``[generator]``)."""

    generator: GeneratorSettings = Field(None, validate_default=True, description=(
        "the generator's settings, or a preset name (paper, stable)"))

    @field_validator("generator", mode="before")
    @classmethod
    def _shared_generator(cls, value: Any, info: Any) -> Any:
        return over(GeneratorSettings, shared_table(info, "generator"), value)


class GeneratorStrategy(Strategy):
    """Shared part of strategies that need a generator trained on the pool (cached): every run
    of an experiment shares one, trained with the experiment's ``artifact_seed``."""

    synthesizes: ClassVar[bool] = True
    needs_images: ClassVar[bool] = True
    Settings: ClassVar[type[Settings]] = GeneratorStrategySettings
    settings: GeneratorStrategySettings

    def __init__(self, settings: Any = None, **values: Any) -> None:
        super().__init__(settings, **values)
        self.generator: Generator | None = None
        self.generator_key: str | None = None
        self.cached: CachedGenerator | None = None
        self.device = "cpu"

    def prepare(self, context: PrepareContext) -> None:
        cached = load_or_train(context.pool.to_float(), self.settings.generator,
                               context.cache_dir, context.artifact_seed, context.device,
                               context.show_progress, shared_dir=shared_cache_dir())
        self.generator, self.generator_key = cached.generator, cached.key
        self.cached = cached
        self.device = context.device

    def provenance(self) -> list[dict[str, Any]]:
        """The generator: its cache key and, where its entry records it, its trainer."""
        if self.cached is None:
            return []
        entry: dict[str, Any] = {"kind": "generator", "key": self.cached.key}
        record = trained_on(self.cached.report)
        if record is not None:
            entry["trained_on"] = record
        return [entry]

    def _require_generator(self) -> Generator:
        if self.generator is None:
            raise RuntimeError(f"strategy {self.name!r} needs prepare() (it trains or loads "
                               "the generator) before its first query")
        return self.generator


class SimpleGAN(GeneratorStrategy):
    """The paper's "simple GAN" baseline: label random samples ``G(z)``, ``z`` from the prior."""

    name: ClassVar[str] = "simple-gan"

    def query(self, state: QueryState, k: int) -> Query:
        if k < 1:
            raise ValueError(f"a query needs k >= 1, got {k}")
        gen = self._require_generator()
        z = gen.sample_latent(k, _torch_seed(state.rng))
        with torch.no_grad():
            gen.eval()
            images = gen(z)
        return Query.synthesized(images.cpu().numpy(), z.cpu().numpy(), None,
                                 generator=self.generator_key)


class GAALSettings(GeneratorStrategySettings):
    """The generator, and how the latent space is searched (defaults: the config's
    ``[generator]`` and ``[synthesis]``)."""

    synthesis: SynthesisSettings = Field(None, validate_default=True, description=(
        "the latent search's settings, or a preset name (paper, boundary, edit, labelable)"))

    @field_validator("synthesis", mode="before")
    @classmethod
    def _shared_synthesis(cls, value: Any, info: Any) -> Any:
        return over(SynthesisSettings, shared_table(info, "synthesis"), value)


class GAAL(GeneratorStrategy):
    """GAAL: synthesize the batch on the learner's decision boundary (see
    :func:`~activegen.strategies.synthesis.synthesize`).

    Needs a differentiable learner, and, with manifold diversity, the learner's differentiable
    features (the batch spreads in the learner's feature space)."""

    name: ClassVar[str] = "gaal"
    Settings = GAALSettings
    settings: GAALSettings

    def __init__(self, settings: Any = None, **values: Any) -> None:
        super().__init__(settings, **values)
        self.discriminator: torch.nn.Module | None = None

    @property
    def requires(self) -> tuple[type, ...]:  # type: ignore[override]
        needs_features = self.settings.synthesis.needs_features
        return (Differentiable, DifferentiableFeatures) if needs_features else (Differentiable,)

    def prepare(self, context: PrepareContext) -> None:
        super().prepare(context)
        if self.settings.synthesis.realism > 0:
            assert self.cached is not None
            self.discriminator = self.cached.discriminator(context.device)

    def _synthesize(self, state: QueryState, k: int) -> Synthesis:
        gen = self._require_generator()
        synthesis = self.settings.synthesis
        learner = state.learner
        if not isinstance(learner, Differentiable):
            raise TypeError(f"strategy {self.name!r} needs a differentiable learner")
        labeled = None
        if synthesis.diversity > 0 and synthesis.diversity_kind == "rbf":
            parts = [state.X_pool[state.labeled_indices]]
            if state.X_extra is not None and len(state.X_extra):
                parts.append(state.X_extra)
            labeled = torch.from_numpy(np.concatenate(parts))
        feature_fn = None
        reference = None
        if synthesis.needs_features:
            if not isinstance(learner, DifferentiableFeatures):
                raise TypeError(f"strategy {self.name!r} with manifold diversity needs the "
                                "learner's differentiable features")
            feature_fn = learner.torch_features
            reference = torch.from_numpy(np.asarray(state.X_pool, dtype=np.float32))
        labelability = None
        if synthesis.labelability > 0:
            labelability = Labelability.from_answers(_tensor(state.X_extra),
                                                     _tensor(state.X_refused))
            if labelability is not None:
                labelability = labelability.to(self.device)
        torch_generator = _torch_seed(state.rng)
        initial = None
        if synthesis.start == "pool":
            initial = self._pool_starts(state, k * synthesis.starts, torch_generator)
        disc = self.discriminator
        return synthesize(gen, learner.torch_decision, k, synthesis, labeled=labeled,
                          reference=reference, feature_fn=feature_fn,
                          discriminator=None if disc is None else lambda x: disc(x * 2.0 - 1.0),
                          labelability=None if labelability is None else labelability.log_prob,
                          initial=initial, torch_generator=torch_generator)

    def _pool_starts(self, state: QueryState, count: int,
                     torch_generator: torch.Generator) -> torch.Tensor:
        """The latents of the ``count`` unqueried pool images nearest the learner's boundary
        (inverted), nearest first: query ``i`` starts from the ``i``-th, ``(k + i)``-th, …"""
        learner = state.learner
        assert isinstance(learner, Differentiable)
        available = state.available_indices
        if len(available) == 0:
            available = np.arange(len(state.X_pool))  # every image asked: edit labeled ones
        margins = pool_margins_of(learner.torch_decision, state.X_pool, available)
        picks = available[nearest_boundary(margins, count)]
        images = torch.from_numpy(np.asarray(state.X_pool[picks], dtype=np.float32))
        return invert(self._require_generator(), images, starts=INVERT_STARTS,
                      torch_generator=torch_generator).latents

    def query(self, state: QueryState, k: int) -> Query:
        result = self._synthesize(state, k)
        return Query.synthesized(result.images, result.latents, -result.margins,
                                 generator=self.generator_key,
                                 start_margins=result.start_margins)


class GAALRetrieveSettings(GAALSettings):
    """GAAL's settings and how a real image is chosen near each synthesized one."""

    retrieve_neighbors: int = Field(30, ge=1, strict=True, description=(
        "of each query's m nearest unqueried pool images, the one nearest the learner's "
        "boundary (1: the nearest image; 30 was measured best)"))


class GAALRetrieve(GAAL):
    """Synthesize-then-retrieve: label a real pool image near each GAAL query, so a person
    always sees a real image (the idea of ASAL, Mayer & Timofte 2020).

    ``retrieve_neighbors`` = m: among each query's m nearest (pixels) unqueried pool images,
    the one with the smallest learner margin (the synthesis's own margin: ``|f|``, or the
    top-two gap for several classes). The synthesized point lies on the boundary, but its
    nearest real image need not; the synthesis says *where* along the boundary to ask (spread
    by its diversity term), the margin says which real image there. Returns pool indices
    (distinct; the pool oracle works); the synthesized images and their latents are kept in the
    query's ``meta`` and saved with it.
    """

    name: ClassVar[str] = "gaal-retrieve"
    synthesizes: ClassVar[bool] = False
    Settings = GAALRetrieveSettings
    settings: GAALRetrieveSettings

    def query(self, state: QueryState, k: int) -> Query:
        available = check_batch(state, k)
        k = min(k, len(available))
        result = self._synthesize(state, k)
        m = self.settings.retrieve_neighbors
        pool_margins = None
        if m > 1:
            learner = state.learner
            assert isinstance(learner, Differentiable)
            pool_margins = pool_margins_of(learner.torch_decision, state.X_pool, available)
        picks = nearest_distinct(result.images, state.X_pool, available, neighbors=m,
                                 candidate_margins=pool_margins)
        return Query(indices=picks, samples=None, latents=result.latents,
                     scores=-result.margins,
                     meta={"generator": self.generator_key, "synthesized": result.images})


def pool_margins_of(decide: Callable[[torch.Tensor], torch.Tensor], X_pool: np.ndarray,
                    candidates: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """:func:`margin` of the learner's decision on ``X_pool[candidates]``, ``chunk`` images at a
    time (a CNN's activations over a 50,000-image pool would not fit at once)."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(candidates), chunk):
            block = np.asarray(X_pool[candidates[start:start + chunk]], dtype=np.float32)
            parts.append(margin(decide(torch.from_numpy(block))).numpy())
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)


def nearest_distinct(queries: np.ndarray, X_pool: np.ndarray, candidates: np.ndarray,
                     chunk: int = 4096, neighbors: int = 1,
                     candidate_margins: np.ndarray | None = None) -> np.ndarray:
    """For each query in turn, the nearest candidate pool image not already taken; with
    ``neighbors`` = m > 1, of its m nearest untaken candidates the one with the smallest
    ``candidate_margins`` (aligned with ``candidates``; ties go to the nearer).

    Distances are computed in chunks of the pool (memory ``k × chunk``, never ``N × N``).
    """
    if neighbors > 1 and (candidate_margins is None
                          or len(candidate_margins) != len(candidates)):
        raise ValueError("neighbors > 1 needs one margin per candidate")
    q = torch.from_numpy(np.asarray(queries, dtype=np.float32).reshape(len(queries), -1))
    dist = np.empty((len(q), len(candidates)), dtype=np.float32)
    for start in range(0, len(candidates), chunk):
        idx = candidates[start:start + chunk]
        block = torch.from_numpy(X_pool[idx].reshape(len(idx), -1))
        dist[:, start:start + len(idx)] = torch.cdist(q, block).numpy()
    picks: list[int] = []
    taken = np.zeros(len(candidates), dtype=bool)
    for row in dist:
        row = np.where(taken, np.inf, row)
        if neighbors > 1:
            assert candidate_margins is not None
            m = min(neighbors, int((~taken).sum()))
            near = np.argpartition(row, m - 1)[:m]
            # smallest margin first, then the nearer (lexsort: last key is the primary)
            j = int(near[np.lexsort((row[near], candidate_margins[near]))[0]])
        else:
            j = int(np.argmin(row))
        taken[j] = True
        picks.append(int(candidates[j]))
    return np.asarray(picks, dtype=np.int64)


class StrategyChoice(Settings):
    """A strategy named inside another's settings, with its own settings (validated by the
    registry when the schedule is built, with the config's shared tables)."""

    model_config = Settings.model_config | {"extra": "allow"}
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MixedSettings(Settings):
    """The paper's mixed scheme: which two strategies, how often the second."""

    # validate_default: a default sub-strategy takes the config's shared tables too
    primary: StrategyChoice = Field(default_factory=lambda: StrategyChoice(name="gaal"),
                                    validate_default=True,
                                    description="the strategy of most rounds ({ name = ... })")
    secondary: StrategyChoice = Field(
        default_factory=lambda: StrategyChoice(name="random"), validate_default=True,
        description="the strategy of every (every + 1)-th round ({ name = ... })")
    every: int = Field(5, ge=1, description="primary rounds between secondary ones")

    @field_validator("primary", "secondary", mode="after")
    @classmethod
    def _valid_choice(cls, choice: StrategyChoice, info: Any) -> StrategyChoice:
        if choice.name == "mixed":
            raise ValueError("a mixed schedule cannot contain another mixed schedule")
        context = getattr(info, "context", None) or {}
        settings = STRATEGIES.validate(choice.name, choice.params, context.get("shared"))
        return StrategyChoice(name=choice.name, **settings.model_dump())


class MixedSchedule(Strategy):
    """The paper's mixed scheme: one ``secondary`` round after every ``every`` ``primary``
    rounds (default: one random round after five GAAL rounds, the paper's Figure 6)."""

    name: ClassVar[str] = "mixed"
    synthesizes: ClassVar[bool] = True
    Settings = MixedSettings
    settings: MixedSettings

    def __init__(self, settings: Any = None, *, context: BuildContext | None = None,
                 **values: Any) -> None:
        super().__init__(settings, **values)
        context = context if context is not None else BuildContext()
        self.primary = STRATEGIES.build(self.settings.primary.name,
                                        self.settings.primary.params, context)
        self.secondary = STRATEGIES.build(self.settings.secondary.name,
                                          self.settings.secondary.params, context)
        self.every = self.settings.every

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        return cls(settings, context=context)

    @property
    def needs_images(self) -> bool:  # type: ignore[override]
        return self.primary.needs_images or self.secondary.needs_images

    @property
    def requires(self) -> tuple[type, ...]:  # type: ignore[override]
        """What either sub-strategy requires."""
        return tuple(dict.fromkeys((*self.primary.requires, *self.secondary.requires)))

    def uses_secondary(self, round_: int) -> bool:
        """Rounds ``every``, ``2·every + 1``, … (0-based) are secondary rounds."""
        return round_ % (self.every + 1) == self.every

    def prepare(self, context: PrepareContext) -> None:
        self.primary.prepare(context)
        self.secondary.prepare(context)

    def provenance(self) -> list[dict[str, Any]]:
        """Both sub-strategies' artefacts, each key once."""
        found: dict[str, dict[str, Any]] = {}
        for entry in (*self.primary.provenance(), *self.secondary.provenance()):
            found.setdefault(entry["key"], entry)
        return list(found.values())

    def query(self, state: QueryState, k: int) -> Query:
        chosen = self.secondary if self.uses_secondary(state.round) else self.primary
        return chosen.query(state, k)
