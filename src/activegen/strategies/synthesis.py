"""GAAL's latent search (Zhu & Bento 2017), in parts: an objective of terms, two optimizers.

:func:`synthesize` minimises, over the latent ``z`` of a trained generator ``G``, an objective
made of terms, each a function of ``z`` and ``G(z)`` giving one value per start:

- :class:`MarginTerm`: the learner's margin at ``G(z)``, ``|f|`` for a binary learner
  (``f = w·φ(x) + b``, ``φ`` whatever the learner's ``torch_decision`` applies) and the gap
  between the two best class scores for several classes (the paper's one-vs-rest extension);
  optionally inside a band ``max(0, margin − ε)`` (any point within ε is on the boundary), and
  pseudo-Huber-smoothed for L-BFGS;
- :class:`RealismTerm`: the trained discriminator's verdict ``softplus(−D(G(z)))``, low where
  ``G(z)`` looks real, so that a person can label the query;
- :class:`DiversityTerm`: RBF similarity of a start to the batch's other queries (in pixels plus
  the labeled images: ``rbf``; or in the learner's features plus the distance to the nearest
  pool image: ``manifold``), the remedy the paper proposes for its same-distribution collapse;
- :class:`LabelabilityTerm`: ``−log p(G(z) is named)`` by a model of the oracle's earlier
  answers (:class:`~activegen.strategies.labelability.Labelability`), so that the search keeps
  to where the oracle answers.

Two optimizers run every start of the batch at once (one forward/backward per step):
:func:`sgd_descent` (normalised-gradient descent with momentum) and :func:`batched_lbfgs` (each
start its own L-BFGS with a backtracking line search). ``z`` stays in the prior's bulk by
clipping to ``±3σ``. Each query keeps the best point any of its starts reached. The starts are
random draws from the prior, or given latents (``initial``: real images' inversions, so that a
query is a small edit of an image a person recognises).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from activegen._settings import PresetSettings
from activegen.generative.dcgan import Generator

#: steps (SGD) or iterations (L-BFGS) when ``steps`` is not given
DEFAULT_STEPS: dict[str, int] = {"sgd": 50, "lbfgs": 5}
#: δ of the pseudo-Huber margin used by L-BFGS, relative to the median margin at the starts
HUBER = 1e-2


class SynthesisSettings(PresetSettings):
    """How GAAL searches the latent space. Presets: ``paper`` (the paper's objective, by SGD),
    ``boundary`` (L-BFGS with manifold diversity, from random draws), ``edit`` (``boundary``
    from the inverted pool images nearest the boundary: small edits of real images, the
    paper-protocol configs' GAAL) and ``labelable`` (a margin band, the discriminator's realism
    and some diversity: queries a person can name)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "boundary": {"optimizer": "lbfgs", "diversity": 1.0, "diversity_kind": "manifold"},
        "edit": {"optimizer": "lbfgs", "diversity": 1.0, "diversity_kind": "manifold",
                 "start": "pool"},
        "labelable": {"optimizer": "lbfgs", "band": 1.0, "realism": 1.0, "diversity": 0.3,
                      "diversity_kind": "manifold"},
    }

    optimizer: Literal["sgd", "lbfgs"] = Field("sgd", description=(
        "sgd: normalised-gradient descent with momentum; lbfgs: batched L-BFGS with a line "
        "search per start on a smoothed margin"))
    steps: int | None = Field(None, ge=1, description=(
        "descent steps (sgd, default 50) or L-BFGS iterations (lbfgs, default 5)"))
    lr: float = Field(0.05, gt=0, description="sgd: the step in latent space")
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: heavy-ball momentum")
    starts: int = Field(4, ge=1, description="random starts per query, all in one batch")
    band: float = Field(0.0, ge=0, description=(
        "margin band ε: max(0, margin − ε) replaces the margin (0: the paper's objective)"))
    realism: float = Field(0.0, ge=0, description=(
        "weight of the trained discriminator's verdict on G(z) (0: the paper's objective)"))
    diversity: float = Field(0.0, ge=0, description="weight of the diversity term (0: none)")
    diversity_kind: Literal["rbf", "manifold"] = Field("rbf", description=(
        "rbf: repulsion in pixels from the batch and the labeled images; manifold: repulsion "
        "in the learner's features plus the distance to the nearest pool image"))
    labelability: float = Field(0.0, ge=0, description=(
        "weight of -log p(named) by a model of the oracle's earlier answers to synthesized "
        "queries (0: none)"))
    start: Literal["prior", "pool"] = Field("prior", description=(
        "prior: the search starts from random draws of z; pool: from the inversions of the "
        "unqueried pool images nearest the learner's boundary (small edits of real images)"))

    @property
    def n_steps(self) -> int:
        """``steps``, or the optimizer's default."""
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.optimizer]

    @property
    def needs_features(self) -> bool:
        """Whether the diversity term reads the learner's differentiable features."""
        return self.diversity > 0 and self.diversity_kind == "manifold"


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


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[len(a), len(b)]``."""
    # ‖a‖² + ‖b‖² − 2ab: one matmul, and a cheap backward (torch.cdist's is far slower here).
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)


def _rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    return torch.exp(-sq_dist(a, b) / (2.0 * bandwidth**2))


class NearestReference:
    """Squared pixel distance of images to their nearest reference (pool) image, divided by
    the pool's median nearest-neighbour distance (so its weight means the same on any data)."""

    def __init__(self, reference: torch.Tensor) -> None:
        if len(reference) < 2:
            raise ValueError("the nearest-pool distance needs at least 2 pool images")
        self.flat = reference.reshape(len(reference), -1).float()
        with torch.no_grad():
            sample = self.flat[:512]
            d = sq_dist(sample, self.flat)
            d[torch.arange(len(sample)), torch.arange(len(sample))] = float("inf")
            self.scale = float(d.min(dim=1).values.median().clamp_min(1e-12))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return sq_dist(images.reshape(len(images), -1), self.flat).min(dim=1).values / self.scale


class MarginTerm:
    """The learner's margin at ``G(z)``: banded by ``band``, and with ``smooth`` the
    pseudo-Huber ``√(m² + δ²) − δ`` (smooth at 0 as L-BFGS needs; ``|m|`` beyond δ, so the
    other terms weigh against it as with SGD; δ = :data:`HUBER` × the median at the starts)."""

    def __init__(self, decision_fn: Callable[[torch.Tensor], torch.Tensor], band: float,
                 smooth: bool) -> None:
        self.decision_fn, self.band, self.smooth = decision_fn, band, smooth
        self.huber: float | None = None

    def margins(self, images: torch.Tensor) -> torch.Tensor:
        return margin(self.decision_fn(images))

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        objective = (m - self.band).clamp_min(0.0) if self.band > 0 else m
        if self.smooth:
            if self.huber is None:
                self.huber = float(objective.detach().median().clamp_min(1e-12)) * HUBER
            objective = (objective.pow(2) + self.huber**2).sqrt() - self.huber
        return objective


class RealismTerm:
    """``weight · softplus(−D(G(z)))`` over its median at the random starts: low where the
    trained discriminator finds ``G(z)`` real (the non-saturating GAN loss)."""

    def __init__(self, discriminator: Callable[[torch.Tensor], torch.Tensor],
                 weight: float) -> None:
        self.discriminator, self.weight = discriminator, weight
        self.scale: float | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        fake = torch.nn.functional.softplus(-self.discriminator(images))
        if self.scale is None:
            self.scale = float(fake.detach().median().clamp_min(1e-6))
        return self.weight * fake / self.scale


class DiversityTerm:
    """``weight ×`` the RBF similarity of each start to the other queries' starts (bandwidth:
    the median distance of the first draws), plus, for ``rbf``, its largest similarity to a
    labeled image (pixels), or, for ``manifold`` (in the learner's ``feature_fn`` space), the
    nearest-pool distance (:class:`NearestReference`), so the batch spreads along the data
    instead of away from it."""

    def __init__(self, weight: float, kind: str, slots: torch.Tensor, starts: int,
                 labeled: torch.Tensor | None = None,
                 feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 nearest: NearestReference | None = None) -> None:
        if kind == "manifold" and (feature_fn is None or nearest is None):
            raise ValueError("manifold diversity needs the learner's features and the pool")
        self.weight, self.kind, self.starts = weight, kind, starts
        self.other_slot = slots[:, None] != slots[None, :]
        self.labeled = None if labeled is None else labeled.reshape(len(labeled), -1)
        self.feature_fn, self.nearest = feature_fn, nearest
        self.bandwidth: float | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n = len(images)
        if self.kind == "rbf":
            flat = images.reshape(n, -1)
        else:
            assert self.feature_fn is not None
            flat = self.feature_fn(images).reshape(n, -1)
        if self.bandwidth is None:
            with torch.no_grad():
                # off the diagonal by position: sq_dist's rounding leaves some self-distances
                # at 0 and others at ~1e-3, as a machine's float kernels have it
                d = sq_dist(flat, flat).sqrt()[~torch.eye(n, dtype=torch.bool,
                                                          device=flat.device)]
                self.bandwidth = float(d[d > 0].median()) if (d > 0).any() else 1.0
        spread = (_rbf(flat, flat, self.bandwidth) * self.other_slot).sum(dim=1) / self.starts
        if self.kind == "rbf" and self.labeled is not None and len(self.labeled):
            spread = spread + _rbf(flat, self.labeled, self.bandwidth).max(dim=1).values
        if self.kind == "manifold":
            assert self.nearest is not None
            spread = spread + self.nearest(images)
        return self.weight * spread


class LabelabilityTerm:
    """``weight · −log p(named)`` of ``G(z)``: ``log_prob`` is a model of which images the
    oracle named and which it refused (:class:`~activegen.strategies.labelability.Labelability`).
    Not rescaled: ``−log p`` is in nats whatever the data, and 1 nat is the cost of a start's
    margin of 1 (a linear SVM's margin edge)."""

    def __init__(self, log_prob: Callable[[torch.Tensor], torch.Tensor], weight: float) -> None:
        self.log_prob, self.weight = log_prob, weight

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return -self.weight * self.log_prob(images)


Objective = Callable[[torch.Tensor], torch.Tensor]


def sgd_descent(objective: Objective, u0: torch.Tensor, steps: int, lr: float, momentum: float,
                project: Callable[[torch.Tensor], None]) -> None:
    """Heavy-ball descent on every row of ``u0`` at once, each row's gradient scaled to unit
    length (so ``lr`` is a distance in latent space whatever the scale of the learner's
    decision values: an SVM on raw pixels and a CNN differ by orders of magnitude); the
    objective is evaluated ``steps + 1`` times (it records the best point itself)."""
    u = u0.clone().requires_grad_(True)
    # as torch.optim.SGD, whose first construction imports torch's compiler stack (seconds
    # on a cold process)
    velocity = torch.zeros_like(u0)
    for step in range(steps + 1):
        value = objective(u)
        if step == steps:
            break
        grad, = torch.autograd.grad(value.sum(), u)
        with torch.no_grad():
            velocity.mul_(momentum).add_(grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12))
            u.add_(velocity, alpha=-lr)
            project(u)


def batched_lbfgs(objective: Objective, u0: torch.Tensor, iterations: int,
                  project: Callable[[torch.Tensor], None], history: int = 5,
                  trials: int = 4) -> None:
    """L-BFGS on every row of ``u0``, each row its own problem with its own curvature pairs and
    its own backtracking (Armijo) line search, all rows in one batched evaluation per trial.
    ``project`` keeps every trial point feasible, in place; the objective records the best
    point itself. A row whose last pair had ``s·y <= 0`` takes the raw gradient direction and
    relies on the line search; a row whose line search fails keeps its point. (torch's
    L-BFGS optimises one problem, not a batch of independent ones, hence this loop.)"""

    def fun(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = v.detach().requires_grad_(True)
        value = objective(v)
        grad, = torch.autograd.grad(value.sum(), v)
        return value.detach(), grad

    u = u0.clone()
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
        S.append(u_new - u)
        Y.append(g_new - g)
        if len(S) > history:
            S.pop(0)
            Y.pop(0)
        u, f, g = u_new, f_new, g_new


class _Frozen:
    """Modules in eval mode with gradients off for their parameters, restored afterwards."""

    def __init__(self, modules: Sequence[torch.nn.Module]) -> None:
        self.modules = list(modules)

    def __enter__(self) -> None:
        self.saved = [(m.training, [p.requires_grad for p in m.parameters()])
                      for m in self.modules]
        for m in self.modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for m, (mode, flags) in zip(self.modules, self.saved, strict=True):
            for p, flag in zip(m.parameters(), flags, strict=True):
                p.requires_grad_(flag)
            m.train(mode)


def synthesize(
    generator: Generator,
    decision_fn: Callable[[torch.Tensor], torch.Tensor],
    k: int,
    settings: SynthesisSettings | None = None,
    *,
    labeled: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    labelability: Callable[[torch.Tensor], torch.Tensor] | None = None,
    initial: torch.Tensor | None = None,
    torch_generator: torch.Generator | None = None,
) -> Synthesis:
    """Synthesize ``k`` queries near the decision boundary of ``decision_fn``.

    Args:
        generator: maps ``z`` to images in ``[0, 1]``.
        decision_fn: differentiable decision values of images (``learner.torch_decision``).
        k: number of queries (each from its own starts, so they are distinct).
        settings: the search (default: the paper's, :class:`SynthesisSettings`).
        labeled: images already labeled ``[M, C, H, W]`` in ``[0, 1]`` (``rbf`` diversity).
        reference: pool images (``manifold`` diversity's nearest-pool distance).
        discriminator: logits of images in ``[0, 1]`` (the realism term).
        feature_fn: the learner's differentiable features (``manifold`` diversity).
        labelability: ``log p(named)`` of images (the labelability term); ``None`` while the
            oracle has refused nothing, which leaves the term out.
        initial: latents to start from ``[≤ k·starts, d]``, row ``i`` serving query ``i % k``
            (``start = "pool"``); the rows beyond them are random draws.
        torch_generator: seeds the random starts.
    """
    settings = settings if settings is not None else SynthesisSettings()
    if k < 1:
        raise ValueError(f"synthesize needs k >= 1, got {k}")
    if settings.realism > 0 and discriminator is None:
        raise ValueError("the realism term needs the generator's discriminator")
    if settings.start == "pool" and initial is None:
        raise ValueError("starts from the pool need their latents (initial)")
    device = next(generator.parameters()).device
    bound = generator.latent_bound
    starts = settings.starts
    n = k * starts
    slots = torch.arange(n, device=device) % k  # start i serves query i % k
    margin_term = MarginTerm(decision_fn, settings.band, smooth=settings.optimizer == "lbfgs")
    terms: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if settings.realism > 0:
        assert discriminator is not None
        terms.append(RealismTerm(discriminator, settings.realism))
    if settings.diversity > 0:
        nearest = None
        if settings.diversity_kind == "manifold":
            if reference is None:
                raise ValueError("manifold diversity needs the pool images (reference)")
            nearest = NearestReference(reference.to(device))
        terms.append(DiversityTerm(
            settings.diversity, settings.diversity_kind, slots, starts,
            labeled=None if labeled is None else labeled.to(device),
            feature_fn=feature_fn, nearest=nearest))
    if settings.labelability > 0 and labelability is not None:
        terms.append(LabelabilityTerm(labelability, settings.labelability))
    best_obj = torch.full((n,), float("inf"), device=device)
    best_z = torch.zeros(n, generator.latent_dim, device=device)
    start_margins: torch.Tensor | None = None

    def objective(z: torch.Tensor) -> torch.Tensor:
        """The per-start objective at ``z``; records the best point each start has reached."""
        nonlocal best_obj, best_z, start_margins
        images = generator(z)
        m = margin_term.margins(images)
        value = margin_term(m)
        for term in terms:
            value = value + term(images)
        with torch.no_grad():
            if start_margins is None:
                start_margins = m[:k].detach().clone()
            better = value.detach() < best_obj
            best_obj = torch.where(better, value.detach(), best_obj)
            best_z = torch.where(better[:, None], z.detach(), best_z)
        return value

    def project(u: torch.Tensor) -> None:
        u.clamp_(-bound, bound)

    frozen = [generator] + ([discriminator] if isinstance(discriminator, torch.nn.Module)
                            else [])
    with _Frozen(frozen):
        z0 = generator.sample_latent(n, torch_generator, device)
        if initial is not None:
            if len(initial) > n or initial.shape[1:] != z0.shape[1:]:
                raise ValueError(f"initial latents {tuple(initial.shape)} do not fit "
                                 f"{n} starts of {generator.latent_dim}")
            z0[:len(initial)] = initial.to(device)
        z0 = z0.clamp(-bound, bound)
        if settings.optimizer == "sgd":
            sgd_descent(objective, z0, settings.n_steps, settings.lr, settings.momentum,
                        project)
        else:
            batched_lbfgs(objective, z0, settings.n_steps, project)
        # Per query, the start that reached the smallest objective.
        chosen = best_obj.view(starts, k).argmin(dim=0) * k + torch.arange(k, device=device)
        z_final = best_z[chosen].clamp(-bound, bound)
        with torch.no_grad():
            images = generator(z_final)
            final_margins = margin(decision_fn(images))
    assert start_margins is not None
    return Synthesis(
        images=images.detach().cpu().numpy().astype(np.float32),
        latents=z_final.cpu().numpy().astype(np.float32),
        margins=final_margins.detach().cpu().double().numpy(),
        start_margins=start_margins.cpu().double().numpy(),
    )
