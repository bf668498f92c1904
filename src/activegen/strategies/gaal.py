"""GAAL query synthesis (Zhu & Bento 2017) and the strategies built on a trained generator.

:func:`synthesize` minimises the learner's margin at ``G(z)`` over the latent ``z``:
``|f(G(z))|`` for a binary learner (``f = w·φ(x) + b``; ``φ`` is whatever the learner's
``torch_decision`` applies: raw pixels for the linear SVM, a CNN's penultimate layer for a CNN
learner), and the gap between the two best class scores for several classes (the paper's
one-vs-rest extension). Gradient descent with momentum from ``k × starts × restarts`` random
starts at once (one batched forward/backward per step; ``restarts`` multiplies the starts, it
no longer runs them one after another); each query keeps the best point any of its starts
reached. ``z`` stays in the prior's support by
clipping, a ``tanh`` reparametrisation, or a prior penalty followed by a final projection.

Beyond the paper: a realism term (distance to the nearest pool image, or the prior's density)
and a margin band, so that a person can label the queries; a diversity term (RBF similarity to
the batch's other queries and to the labeled images, in pixel space), the remedy the paper
proposes for its same-distribution collapse; and synthesize-then-retrieve (label the real pool
image nearest each query).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from activegen._registry import settings as constructor_settings
from activegen.errors import UnknownNameError
from activegen.generative.cache import (
    CachedGenerator,
    load_or_train,
    shared_cache_dir,
    trained_on,
)
from activegen.generative.dcgan import Generator
from activegen.generative.training import GAN_KINDS, GeneratorSettings
from activegen.models.capabilities import Differentiable
from activegen.strategies.base import (
    STRATEGIES,
    PrepareContext,
    Query,
    QueryState,
    Strategy,
    check_batch,
)

Constraint = Literal["clip", "tanh", "penalty"]
CONSTRAINTS: tuple[str, ...] = ("clip", "tanh", "penalty")
Realism = Literal["nearest", "prior", "discriminator"]
REALISMS: tuple[str, ...] = ("nearest", "prior", "discriminator")
Optimizer = Literal["sgd", "lbfgs"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "lbfgs")
#: steps (SGD) or iterations (L-BFGS) when ``steps`` is not given
DEFAULT_STEPS: dict[str, int] = {"sgd": 50, "lbfgs": 5}
DiversityKind = Literal["rbf", "manifold"]
DIVERSITY_KINDS: tuple[str, ...] = ("rbf", "manifold")


@dataclass(frozen=True)
class Synthesis:
    """``k`` synthesized queries: images in ``[0, 1]``, their latents and margins, and the
    margins of random draws from the prior (what descent started from) for comparison."""

    images: np.ndarray  # float32 [k, C, H, W]
    latents: np.ndarray  # float32 [k, d]
    margins: np.ndarray  # float64 [k]
    start_margins: np.ndarray  # float64 [k]


def margin(decision: torch.Tensor) -> torch.Tensor:
    """Per-sample margin: ``|f|`` for ``[N]`` decisions, top-1 − top-2 gap for ``[N, K]``."""
    if decision.ndim == 1:
        return decision.abs()
    top2 = decision.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # ‖a‖² + ‖b‖² − 2ab: one matmul, and a cheap backward (torch.cdist's is far slower here).
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)


def _rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return torch.exp(-_sq_dist(a, b) / (2.0 * bandwidth**2))


#: δ of the pseudo-Huber margin used by L-BFGS, relative to the median margin at the starts
HUBER = 1e-2


def _prior_nll(z: torch.Tensor, prior: str) -> torch.Tensor:
    return 0.5 * z.pow(2) if prior == "normal" else torch.relu(z.abs() - 1.0).pow(2)


def _batched_lbfgs(fun: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   u: torch.Tensor, iterations: int, project: Callable[[torch.Tensor], None],
                   history: int = 5, trials: int = 4) -> None:
    """Minimise ``fun`` (per-row objective ``[n]`` and its gradient ``[n, d]``) by L-BFGS, each
    row its own problem with its own curvature pairs and its own backtracking (Armijo) line
    search, all rows in one batched evaluation per trial. Returns nothing: ``fun`` records the
    best point it has seen (``project`` keeps every trial point feasible, in place). A row
    whose last pair had ``s·y <= 0`` takes the raw gradient direction (scale 1) and relies on
    the line search; a row whose line search fails keeps its point."""
    f, g = fun(u)
    n = len(u)
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    for _ in range(iterations):
        # two-loop recursion, batched over rows; a pair with s·y <= 0 is skipped (rho = 0)
        q = g.clone()
        alphas = []
        rhos = [torch.where((s * y).sum(1) > 1e-12, 1.0 / (s * y).sum(1).clamp_min(1e-12),
                            torch.zeros(n, device=u.device)) for s, y in zip(S, Y, strict=True)]
        for s, y, rho in zip(reversed(S), reversed(Y), reversed(rhos), strict=True):
            a = rho * (s * q).sum(1)
            q = q - a[:, None] * y
            alphas.append(a)
        if S:
            s, y = S[-1], Y[-1]
            gamma = torch.where(rhos[-1] > 0, (s * y).sum(1) / (y * y).sum(1).clamp_min(1e-12),
                                torch.ones(n, device=u.device))
            r = gamma[:, None] * q
        else:
            # first step: Polyak's step length f / ‖g‖² (the objective's minimum is near 0)
            r = q * (f.clamp_min(0.0) / (g * g).sum(1).clamp_min(1e-12))[:, None]
        for s, y, rho, a in zip(S, Y, rhos, reversed(alphas), strict=True):
            b = rho * (y * r).sum(1)
            r = r + (a - b)[:, None] * s
        d = -r
        slope = (g * d).sum(1)
        d = torch.where((slope < 0)[:, None], d, -g * (f.clamp_min(0.0) / (g * g).sum(1)
                                                       .clamp_min(1e-12))[:, None])
        slope = (g * d).sum(1)
        t = torch.ones(n, device=u.device)
        accepted = torch.zeros(n, dtype=torch.bool, device=u.device)
        u_new, f_new, g_new = u, f, g
        for _trial in range(trials):
            cand = u + t[:, None] * d
            project(cand)
            fc, gc = fun(cand)
            ok = ~accepted & (fc <= f + 1e-4 * t * slope)
            u_new = torch.where(ok[:, None], cand, u_new)
            f_new = torch.where(ok, fc, f_new)
            g_new = torch.where(ok[:, None], gc, g_new)
            accepted |= ok
            if bool(accepted.all()):
                break
            t = torch.where(accepted, t, t * 0.25)
        s_new, y_new = u_new - u, g_new - g
        S.append(s_new)
        Y.append(y_new)
        if len(S) > history:
            S.pop(0)
            Y.pop(0)
        u, f, g = u_new, f_new, g_new


def synthesize(
    generator: Generator,
    decision_fn: Callable[[torch.Tensor], torch.Tensor],
    k: int,
    *,
    steps: int | None = None,
    lr: float = 0.05,
    momentum: float = 0.9,
    starts: int = 2,
    restarts: int = 2,
    constraint: Constraint = "clip",
    penalty_weight: float = 0.01,
    diversity_weight: float = 0.0,
    diversity_bandwidth: float | None = None,
    labeled: torch.Tensor | None = None,
    torch_generator: torch.Generator | None = None,
    realism_weight: float = 0.0,
    realism: Realism = "nearest",
    reference: torch.Tensor | None = None,
    band: float = 0.0,
    optimizer: Optimizer = "sgd",
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    diversity_kind: DiversityKind = "rbf",
    feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Synthesis:
    """Synthesize ``k`` queries near the decision boundary of ``decision_fn``.

    Args:
        generator: maps ``z`` to images in ``[0, 1]``; its prior and support are used.
        decision_fn: differentiable decision values of images (``learner.torch_decision``).
        k: number of queries (each from its own starts, so they are distinct).
        steps: descent steps (``sgd``, default 50) or L-BFGS iterations (``lbfgs``, default 5).
        lr, momentum: ``sgd`` only: SGD with momentum on ``z`` (or on ``u`` with
            ``z = B·tanh(u)``), each start's gradient normalised to unit length (``lr`` is a
            step in latent space).
        starts, restarts: each query gets ``starts × restarts`` starts, all in one batch.
        constraint: ``clip`` (project onto the support box after every step), ``tanh``
            (``z = B·tanh(u)``), or ``penalty`` (add ``penalty_weight ×`` the prior's negative
            log-density, then project at the end).
        diversity_weight: weight of a diversity term (0 = the paper's GAAL). ``diversity_kind``
            ``rbf``: the RBF similarity of a query to the other queries of the batch plus its
            largest similarity to a ``labeled`` image, in pixel space; ``manifold``: the RBF
            similarity to the batch's other queries in the learner's feature space
            (``feature_fn``; pixels without it) plus the squared distance to the nearest
            ``reference`` (pool) image over the pool's median nearest-neighbour distance, so the
            batch spreads along the data instead of away from it.
        diversity_bandwidth: RBF width; ``None`` = median distance of the first random draws.
        labeled: images already labeled ``[M, C, H, W]`` in ``[0, 1]`` (``rbf`` diversity).
        torch_generator: seeds the random starts.
        realism_weight: weight of a term that keeps queries on the data manifold, so a person
            can label them: ``nearest`` = squared pixel distance of ``G(z)`` to its nearest
            ``reference`` image (real pool images), divided by the median nearest-neighbour
            distance among them; ``prior`` = the prior's negative log-density of ``z`` per
            dimension; ``discriminator`` = ``softplus(−D(G(z)))`` (the non-saturating GAN
            loss: low where the trained discriminator finds ``G(z)`` real), divided by its
            median at the random starts. 0 = the paper's objective.
        band: margin band: ``max(0, margin − band)`` replaces the margin, so any point with
            ``|f| <= band`` is on the boundary and the realism term alone ranks those.
        optimizer: ``sgd`` (normalised-gradient descent with momentum) or ``lbfgs`` (batched
            L-BFGS, each start its own problem with a backtracking line search). With
            ``lbfgs`` the margin enters as the pseudo-Huber ``√(m² + δ²) − δ`` (smooth at 0,
            ``|m|`` beyond δ = :data:`HUBER` × the median margin at the starts), so the other
            terms' weights mean what they mean with ``sgd``.
        discriminator: logits of images in ``[0, 1]`` (``realism = "discriminator"``).
        feature_fn: the learner's differentiable features of images (``manifold`` diversity).

    All ``k × starts × restarts`` starts run in one batch (one forward/backward per step).
    """
    if k < 1:
        raise ValueError(f"synthesize needs k >= 1, got {k}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if steps is None:
        steps = DEFAULT_STEPS[optimizer]
    for name, value in (("steps", steps), ("starts", starts), ("restarts", restarts)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if constraint not in CONSTRAINTS:
        raise ValueError(f"unknown constraint {constraint!r}; known: {', '.join(CONSTRAINTS)}")
    if lr <= 0 or not 0 <= momentum < 1:
        raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
    if diversity_weight < 0:
        raise ValueError(f"diversity_weight must be >= 0, got {diversity_weight}")
    if diversity_kind not in DIVERSITY_KINDS:
        raise ValueError(f"unknown diversity_kind {diversity_kind!r}; known: "
                         f"{', '.join(DIVERSITY_KINDS)}")
    if realism_weight < 0 or band < 0:
        raise ValueError(f"need realism_weight >= 0 and band >= 0, got {realism_weight}, {band}")
    if realism not in REALISMS:
        raise ValueError(f"unknown realism {realism!r}; known: {', '.join(REALISMS)}")
    needs_reference = (realism_weight > 0 and realism == "nearest") or (
        diversity_weight > 0 and diversity_kind == "manifold")
    if needs_reference and (reference is None or len(reference) < 2):
        raise ValueError("realism 'nearest' and diversity 'manifold' need reference images "
                         "(at least 2 pool images)")
    if realism_weight > 0 and realism == "discriminator" and discriminator is None:
        raise ValueError("realism 'discriminator' needs the generator's discriminator")
    device = next(generator.parameters()).device
    bound = generator.latent_bound
    starts = starts * restarts  # every start of the round in one batch
    n = k * starts
    ref_flat: torch.Tensor | None = None
    ref_scale = 1.0
    if needs_reference:
        assert reference is not None
        ref_flat = reference.to(device).reshape(len(reference), -1).float()
        with torch.no_grad():
            sample = ref_flat[:512]
            d = _sq_dist(sample, ref_flat)
            d[torch.arange(len(sample)), torch.arange(len(sample))] = float("inf")
            ref_scale = float(d.min(dim=1).values.median().clamp_min(1e-12))
    slot = torch.arange(n, device=device) % k  # start i serves query i % k
    other_slot = slot[:, None] != slot[None, :]
    was_training = generator.training
    generator.eval()
    frozen = [generator]
    if isinstance(discriminator, torch.nn.Module):
        frozen.append(discriminator)
    modes = [m.training for m in frozen]
    grads = [[p.requires_grad for p in m.parameters()] for m in frozen]
    for m in frozen:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    if labeled is not None:
        labeled = labeled.to(device).reshape(len(labeled), -1)
    best_obj = torch.full((n,), float("inf"), device=device)
    best_z = torch.zeros(n, generator.latent_dim, device=device)
    start_margins = torch.zeros(k, device=device)
    bandwidth = diversity_bandwidth
    disc_scale: float | None = None
    smooth = optimizer == "lbfgs"
    huber: float | None = None
    first = True

    def to_z(u: torch.Tensor) -> torch.Tensor:
        return bound * torch.tanh(u) if constraint == "tanh" else u

    def evaluate(u: torch.Tensor) -> torch.Tensor:
        """The per-start objective at ``u``; records the best point each start has reached."""
        nonlocal best_obj, best_z, start_margins, bandwidth, disc_scale, first, huber
        z = to_z(u)
        images = generator(z)
        m = margin(decision_fn(images))
        objective = (m - band).clamp_min(0.0) if band > 0 else m
        if smooth:
            # pseudo-Huber |m|, smooth at 0 as L-BFGS needs: |m| beyond δ, so the other
            # terms weigh against the margin as with sgd (δ = HUBER × the median start margin)
            if huber is None:
                huber = float(objective.detach().median().clamp_min(1e-12)) * HUBER
            objective = (objective.pow(2) + huber**2).sqrt() - huber
        if realism_weight > 0:
            if realism == "nearest":
                assert ref_flat is not None
                near = _sq_dist(images.reshape(n, -1), ref_flat).min(dim=1).values
                objective = objective + realism_weight * near / ref_scale
            elif realism == "prior":
                objective = objective + realism_weight * _prior_nll(z, generator.prior).mean(1)
            else:
                assert discriminator is not None
                fake = torch.nn.functional.softplus(-discriminator(images))
                if disc_scale is None:
                    disc_scale = float(fake.detach().median().clamp_min(1e-6))
                objective = objective + realism_weight * fake / disc_scale
        if constraint == "penalty":
            objective = objective + penalty_weight * _prior_nll(z, generator.prior).sum(dim=1)
        if diversity_weight > 0:
            if diversity_kind == "rbf":
                flat = images.reshape(n, -1)
            else:
                flat = (feature_fn(images) if feature_fn is not None else images).reshape(n, -1)
            if bandwidth is None:
                with torch.no_grad():
                    d = _sq_dist(flat, flat).sqrt()
                    bandwidth = float(d[d > 0].median()) if (d > 0).any() else 1.0
            sim = _rbf(flat, flat, bandwidth) * other_slot
            spread = sim.sum(dim=1) / starts
            if diversity_kind == "rbf" and labeled is not None and len(labeled):
                spread = spread + _rbf(flat, labeled, bandwidth).max(dim=1).values
            if diversity_kind == "manifold":
                assert ref_flat is not None
                near = _sq_dist(images.reshape(n, -1), ref_flat).min(dim=1).values
                spread = spread + near / ref_scale
            objective = objective + diversity_weight * spread
        with torch.no_grad():
            if first:
                start_margins = m[:k].detach().clone()
                first = False
            better = objective.detach() < best_obj
            best_obj = torch.where(better, objective.detach(), best_obj)
            best_z = torch.where(better[:, None], z.detach(), best_z)
        return objective

    try:
        z0 = generator.sample_latent(n, torch_generator, device).clamp(-bound, bound)
        u0 = torch.atanh((z0 / bound).clamp(-0.999, 0.999)) if constraint == "tanh" else z0
        if optimizer == "sgd":
            u = u0.clone().requires_grad_(True)
            velocity = torch.zeros_like(u0)  # heavy-ball momentum, as torch.optim.SGD (whose
            # first construction imports torch's compiler stack: seconds on a cold process)
            for step in range(steps + 1):
                objective = evaluate(u)
                if step == steps:
                    break
                grad, = torch.autograd.grad(objective.sum(), u)
                # Each start's gradient is scaled to unit length, so that ``lr`` is a distance
                # in latent space whatever the scale of the learner's decision values (an SVM
                # on raw pixels and a CNN differ by orders of magnitude).
                with torch.no_grad():
                    velocity.mul_(momentum).add_(grad / grad.norm(dim=1, keepdim=True)
                                                 .clamp_min(1e-12))
                    u.add_(velocity, alpha=-lr)
                    if constraint == "clip":
                        u.clamp_(-bound, bound)
        else:
            def fun(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                v = v.detach().requires_grad_(True)
                objective = evaluate(v)
                grad, = torch.autograd.grad(objective.sum(), v)
                return objective.detach(), grad

            def project(v: torch.Tensor) -> None:
                if constraint == "clip":
                    v.clamp_(-bound, bound)

            _batched_lbfgs(fun, u0.clone(), steps, project)
        # Per query, the start that reached the smallest objective.
        per_slot = best_obj.view(starts, k)
        chosen = per_slot.argmin(dim=0) * k + torch.arange(k, device=device)
        z_final = best_z[chosen].clamp(-bound, bound)  # the support, whatever the constraint
        with torch.no_grad():
            images = generator(z_final)
            final_margins = margin(decision_fn(images))
    finally:
        for m, mode, flags in zip(frozen, modes, grads, strict=True):
            for p, g in zip(m.parameters(), flags, strict=True):
                p.requires_grad_(g)
            m.train(mode)
        generator.train(was_training)
    return Synthesis(
        images=images.detach().cpu().numpy().astype(np.float32),
        latents=z_final.cpu().numpy().astype(np.float32),
        margins=final_margins.detach().cpu().double().numpy(),
        start_margins=start_margins.cpu().double().numpy(),
    )


def _torch_seed(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))


class _GeneratorStrategy(Strategy):
    """Shared part of strategies that need a generator trained on the pool (cached).

    Generator settings: ``gan`` (``dcgan`` | ``wgan-gp``), ``gan_epochs``, ``latent_dim``,
    ``prior`` (``normal`` | ``uniform``), ``gan_width``, ``gan_batch_size``, ``gan_lr``
    (default 2e-4 for DCGAN, 1e-4 for WGAN-GP); data-efficient training: ``gan_augment``
    (DiffAugment ops, e.g. ``"translation,cutout"``), ``gan_spectral_norm``, ``gan_ema``
    (decay), ``gan_eval_every`` (epochs between Fréchet evaluations on held-out pool images;
    the best checkpoint is kept), ``gan_holdout``, ``gan_patience``, ``gan_ada_target``
    (adaptive augmentation: the probability of the ``gan_augment`` ops follows the
    discriminator's overfitting heuristic toward this target; 0 = off); optimisation:
    ``gan_loss`` (``bce`` | ``hinge``), ``gan_d_lr`` (the discriminator's learning rate; unset =
    ``gan_lr``), ``gan_beta1``, ``gan_beta2`` (Adam's; unset = 0.5, 0.999 for DCGAN and 0.0,
    0.9 for WGAN-GP), ``gan_bn_stats`` (``running`` | ``standing``: the generator's batch-norm
    statistics recomputed for the weights in use, e.g. an EMA's). Every run of an
    experiment shares one generator: it is trained with the experiment's ``artifact_seed`` and
    cached.
    """

    synthesizes: ClassVar[bool] = True

    def __init__(self, gan: str = "dcgan", gan_epochs: int = 50, latent_dim: int = 100,
                 prior: str = "normal", gan_width: int = 32, gan_batch_size: int = 64,
                 gan_lr: float | None = None, gan_augment: str = "",
                 gan_spectral_norm: bool = False, gan_ema: float = 0.0,
                 gan_eval_every: int = 0, gan_holdout: float = 0.1,
                 gan_patience: int = 0, gan_ada_target: float = 0.0,
                 gan_loss: str = "bce", gan_d_lr: float | None = None,
                 gan_beta1: float | None = None, gan_beta2: float | None = None,
                 gan_bn_stats: str = "running") -> None:
        if gan not in GAN_KINDS:
            raise ValueError(f"unknown gan {gan!r}; known: {', '.join(GAN_KINDS)}")
        lr = gan_lr if gan_lr is not None else (1e-4 if gan == "wgan-gp" else 2e-4)
        # Validated here, so a bad setting fails when the config is built, before any training.
        self.gan_settings = GeneratorSettings(kind=gan, latent_dim=latent_dim, prior=prior,  # type: ignore[arg-type]
                                              width=gan_width, epochs=gan_epochs,
                                              batch_size=gan_batch_size, lr=lr,
                                              augment=gan_augment,
                                              spectral_norm=gan_spectral_norm, ema=gan_ema,
                                              eval_every=gan_eval_every, holdout=gan_holdout,
                                              patience=gan_patience,
                                              ada_target=gan_ada_target,
                                              loss=gan_loss, d_lr=gan_d_lr,
                                              beta1=gan_beta1, beta2=gan_beta2,
                                              bn_stats=gan_bn_stats)
        self.generator: Generator | None = None
        self.generator_key: str | None = None
        self.cached: CachedGenerator | None = None
        self.device = "cpu"

    def prepare(self, context: PrepareContext) -> None:
        from dataclasses import replace

        settings = replace(self.gan_settings, seed=context.artifact_seed)
        cached = load_or_train(context.pool.to_float(), settings, context.cache_dir,
                               context.device, context.show_progress,
                               shared_dir=shared_cache_dir())
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


class SimpleGAN(_GeneratorStrategy):
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


class GAAL(_GeneratorStrategy):
    """GAAL: synthesize the batch on the learner's decision boundary (see :func:`synthesize`).

    Synthesis settings: ``optimizer`` (``sgd``, the default: normalised-gradient descent with
    momentum on ``|margin|``, 50 steps; ``lbfgs``: batched L-BFGS on a smoothed margin, 5
    iterations, faster and reaching smaller margins but not yet measured on accuracy or
    abstention), ``steps``, ``lr``, ``momentum`` (``sgd``), ``starts``,
    ``restarts``, ``constraint``, ``penalty_weight``, ``diversity`` (weight; 0 = the paper's
    GAAL), ``diversity_kind`` (``rbf``: pixel-space repulsion from the batch and the labeled
    images; ``manifold``: repulsion in the learner's feature space plus the nearest-pool
    distance), ``diversity_bandwidth``, ``realism`` (weight of the realism term; 0 = the
    paper's GAAL), ``realism_kind`` (``nearest``: distance to the nearest pool image;
    ``prior``; ``discriminator``: the trained discriminator's verdict, saved with the
    generator), ``band`` (margin band ε); plus the generator settings of
    :class:`_GeneratorStrategy` (keyword arguments, forwarded to it).
    """

    name: ClassVar[str] = "gaal"
    requires: ClassVar[tuple[type, ...]] = (Differentiable,)

    def __init__(self, steps: int | None = None, lr: float = 0.05, momentum: float = 0.9,
                 starts: int = 2, restarts: int = 2, constraint: str = "clip",
                 penalty_weight: float = 0.01, diversity: float = 0.0,
                 diversity_bandwidth: float | None = None, realism: float = 0.0,
                 realism_kind: str = "nearest", band: float = 0.0, optimizer: str = "sgd",
                 diversity_kind: str = "rbf", **generator: Any) -> None:
        # The generator settings are written once, in _GeneratorStrategy.__init__; the
        # registry reads them through this **generator (activegen._registry.settings), so a
        # config's unknown key is still refused by name before anything is built.
        super().__init__(**generator)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if diversity_kind not in DIVERSITY_KINDS:
            raise ValueError(f"unknown diversity_kind {diversity_kind!r}; known: "
                             f"{', '.join(DIVERSITY_KINDS)}")
        steps = DEFAULT_STEPS[optimizer] if steps is None else steps
        if realism < 0 or band < 0:
            raise ValueError(f"need realism >= 0 and band >= 0, got {realism}, {band}")
        if realism_kind not in REALISMS:
            raise ValueError(f"unknown realism_kind {realism_kind!r}; known: "
                             f"{', '.join(REALISMS)}")
        if constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {constraint!r}; known: {', '.join(CONSTRAINTS)}")
        for name, value in (("steps", steps), ("starts", starts), ("restarts", restarts)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if diversity < 0:
            raise ValueError(f"diversity must be >= 0, got {diversity}")
        self.synthesis = {"steps": steps, "lr": lr, "momentum": momentum, "starts": starts,
                          "restarts": restarts, "constraint": constraint,
                          "penalty_weight": penalty_weight, "diversity_weight": diversity,
                          "diversity_bandwidth": diversity_bandwidth,
                          "realism_weight": realism, "realism": realism_kind, "band": band,
                          "optimizer": optimizer, "diversity_kind": diversity_kind}

    def prepare(self, context: PrepareContext) -> None:
        super().prepare(context)
        self.discriminator: torch.nn.Module | None = None
        if self.synthesis["realism_weight"] > 0 and self.synthesis["realism"] == "discriminator":
            assert self.cached is not None
            # a clear error (MissingDiscriminatorError) for an entry saved without one
            self.discriminator = self.cached.discriminator(context.device)

    def _synthesize(self, state: QueryState, k: int) -> Synthesis:
        gen = self._require_generator()
        labeled = None
        if self.synthesis["diversity_weight"] > 0:
            parts = [state.X_pool[state.labeled_indices]]
            if state.X_extra is not None and len(state.X_extra):
                parts.append(state.X_extra)
            labeled = torch.from_numpy(np.concatenate(parts))
        reference = None
        if (self.synthesis["realism_weight"] > 0 and self.synthesis["realism"] == "nearest") or (
                self.synthesis["diversity_weight"] > 0
                and self.synthesis["diversity_kind"] == "manifold"):
            reference = torch.from_numpy(np.asarray(state.X_pool, dtype=np.float32))
        disc = getattr(self, "discriminator", None)
        return synthesize(gen, state.learner.torch_decision, k, labeled=labeled,
                          torch_generator=_torch_seed(state.rng), reference=reference,
                          discriminator=(None if disc is None else
                                         lambda x: disc(x * 2.0 - 1.0)),
                          feature_fn=getattr(state.learner, "torch_features", None),
                          **self.synthesis)

    def query(self, state: QueryState, k: int) -> Query:
        result = self._synthesize(state, k)
        return Query.synthesized(result.images, result.latents, -result.margins,
                                 generator=self.generator_key,
                                 start_margins=result.start_margins)


class GAALRetrieve(GAAL):
    """Synthesize-then-retrieve: label the unqueried pool image nearest (in pixels) each GAAL
    query, so a person always sees a real image (the idea of ASAL, Mayer & Timofte 2020).

    ``retrieve_neighbors`` = m (default 1: the nearest image): among each query's m nearest
    unqueried pool images, the one with the smallest learner margin (the synthesis's own
    margin: ``|f|``, or the top-two gap for several classes). The synthesized point lies on the
    boundary, but its nearest real image need not; with m > 1 the synthesis still says *where*
    along the boundary to ask (spread by its diversity term), the margin says which real image
    there. Returns pool indices (distinct; the pool oracle works); the synthesized images and
    their latents are kept in the query's ``meta`` and saved with it.
    """

    name: ClassVar[str] = "gaal-retrieve"

    def __init__(self, retrieve_neighbors: int = 1, **gaal: Any) -> None:
        # GAAL's and the generator's settings are written once, in GAAL.__init__ and
        # _GeneratorStrategy.__init__; **gaal forwards them (unknown keys still refused by name)
        if isinstance(retrieve_neighbors, bool) or not isinstance(retrieve_neighbors, int) \
                or retrieve_neighbors < 1:
            raise ValueError(f"retrieve_neighbors must be an integer >= 1, got "
                             f"{retrieve_neighbors!r}")
        super().__init__(**gaal)
        self.retrieve_neighbors = retrieve_neighbors

    def query(self, state: QueryState, k: int) -> Query:
        available = check_batch(state, k)
        k = min(k, len(available))
        result = self._synthesize(state, k)
        pool_margins = None
        if self.retrieve_neighbors > 1:
            pool_margins = pool_margins_of(state.learner.torch_decision, state.X_pool, available)
        picks = nearest_distinct(result.images, state.X_pool, available,
                                 neighbors=self.retrieve_neighbors,
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


class MixedSchedule(Strategy):
    """The paper's mixed scheme: one ``secondary`` round after every ``every`` ``primary``
    rounds (default: one random round after five GAAL rounds, the paper's Figure 6).

    ``primary_params`` / ``secondary_params`` are the sub-strategies' parameters (TOML inline
    tables), checked when the strategy is built.
    """

    name: ClassVar[str] = "mixed"
    synthesizes: ClassVar[bool] = True

    def __init__(self, primary: str = "gaal", secondary: str = "random", every: int = 5,
                 primary_params: dict[str, Any] | None = None,
                 secondary_params: dict[str, Any] | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if "mixed" in (primary, secondary):
            raise ValueError("a mixed schedule cannot contain another mixed schedule")
        self.primary = STRATEGIES.build(primary, dict(primary_params or {}))
        self.secondary = STRATEGIES.build(secondary, dict(secondary_params or {}))
        self.every = every

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


#: The generator's settings: the parameters of every generator strategy that decide the
#: generator (and its cache key). A config's ``[generator]`` table sets them once for all.
GENERATOR_SETTINGS: tuple[str, ...] = tuple(constructor_settings(_GeneratorStrategy))

#: The synthesis settings: GAAL's own parameters (how the latent search runs), shared by
#: ``gaal``, ``gaal-retrieve`` and a mixed schedule's GAAL. A config's ``[synthesis]`` table
#: sets them once for all.
SYNTHESIS_SETTINGS: tuple[str, ...] = tuple(
    key for key in constructor_settings(GAAL) if key not in GENERATOR_SETTINGS)


def _with_shared_settings(name: str, params: dict[str, Any], shared: dict[str, Any],
                          users: type[Strategy]) -> dict[str, Any] | None:
    """``params`` of strategy ``name`` with ``shared`` added where it does not set a key
    itself, if the strategy is a subclass of ``users`` (a mixed schedule: its sub-strategies
    that are); ``None`` if none is. An unknown ``name`` is ``None`` too (the config's
    validation names it)."""
    try:
        cls = STRATEGIES.get(name)
    except UnknownNameError:
        return None
    if issubclass(cls, users):
        return {**shared, **params}
    if issubclass(cls, MixedSchedule):
        merged, uses = dict(params), False
        for role, default in (("primary", "gaal"), ("secondary", "random")):
            sub_name = params.get(role, default)
            sub_params = params.get(f"{role}_params") or {}
            if not isinstance(sub_name, str) or not isinstance(sub_params, dict):
                continue  # malformed: the strategy's own validation reports it
            sub = _with_shared_settings(sub_name, sub_params, shared, users)
            if sub is not None:
                merged[f"{role}_params"], uses = sub, True
        return merged if uses else None
    return None


def with_generator_settings(name: str, params: dict[str, Any],
                            generator: dict[str, Any]) -> dict[str, Any] | None:
    """``params`` of strategy ``name`` with the shared ``generator`` settings added where it
    does not set them itself (its own keys win: a variant may train another generator), or
    ``None`` if it trains no generator. A mixed schedule passes them to its sub-strategies.

    The result is exactly what writing the keys into the strategy would give, so a config
    converted to a ``[generator]`` table keeps its fingerprint and its generators' cache keys.
    """
    return _with_shared_settings(name, params, generator, _GeneratorStrategy)


def with_synthesis_settings(name: str, params: dict[str, Any],
                            synthesis: dict[str, Any]) -> dict[str, Any] | None:
    """``params`` of strategy ``name`` with the shared ``synthesis`` settings added where it
    does not set them itself, or ``None`` if it synthesizes nothing (not ``gaal``,
    ``gaal-retrieve`` or a mixed schedule with one); as :func:`with_generator_settings`."""
    return _with_shared_settings(name, params, synthesis, GAAL)
