"""Train a generator on the unlabeled pool only (DCGAN loss or WGAN-GP), seeded, with progress.

WGAN-GP (Gulrajani et al. 2017) is the GAAL paper's "future work": a critic without batch
norm, ``n_critic`` critic steps per generator step, and a penalty ``λ(‖∇D(x̂)‖ − 1)²`` on
random interpolates of real and generated images.

Data-efficient options (Zhao et al. 2020; Miyato et al. 2018), all off by default so that
existing configs train the same generator (and keep their cache keys): ``augment``
(DiffAugment on real and fake images in D's step and on fakes in G's step), ``spectral_norm``
(on every layer of the discriminator, replacing its batch norm), ``ema`` (the generator used is
an exponential moving average of the trained one), and ``eval_every`` (every so many epochs, the
Fréchet distance between samples and ``holdout`` of the pool, in a PCA space fitted on the rest
of the pool, never on test data; the checkpoint with the smallest distance is kept, training
stops after ``patience`` evaluations without improvement), and ``ada_target`` (ADA, Karras
et al. 2020: the ``augment`` ops are applied to each image with a probability ``p`` that
follows the discriminator's overfitting heuristic, :mod:`activegen.generative.ada`). The
optimisation, also off by default: ``loss = "hinge"`` (the hinge loss of SN-GAN, Miyato et
al. 2018: ``D`` minimises ``relu(1 − D(x)) + relu(1 + D(G(z)))``, ``G`` maximises
``D(G(z))``), ``d_lr`` (the discriminator's own learning rate: two time scales, Heusel et al.
2017) and Adam's ``beta1``/``beta2``; ``bn_stats = "standing"`` recomputes the generator's
batch-norm statistics for the weights evaluated and returned (:func:`standing_statistics`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from activegen.generative.ada import AdaptiveAugment
from activegen.generative.augment import diff_augment, parse_policy
from activegen.generative.dcgan import PRIORS, Discriminator, Generator

GanKind = Literal["dcgan", "wgan-gp"]
GAN_KINDS: tuple[str, ...] = ("dcgan", "wgan-gp")
GAN_LOSSES: tuple[str, ...] = ("bce", "hinge")
BN_STATS: tuple[str, ...] = ("running", "standing")
#: latent batches (of the training batch size) that set standing batch-norm statistics
STANDING_BATCHES = 32


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that decides a trained generator (part of its cache key)."""

    kind: GanKind = "dcgan"
    latent_dim: int = 100
    prior: str = "normal"
    width: int = 32
    epochs: int = 50
    batch_size: int = 64
    lr: float = 2e-4
    n_critic: int = 5
    gp_weight: float = 10.0
    seed: int = 0
    augment: str = ""  # DiffAugment ops, e.g. "translation,cutout"
    spectral_norm: bool = False
    ema: float = 0.0  # decay of the generator's weight average (warmed up); 0 = no average
    eval_every: int = 0  # epochs between quality evaluations; 0 = train all epochs, keep last
    holdout: float = 0.1  # share of the pool held out for the quality evaluation
    patience: int = 0  # evaluations without improvement before stopping; 0 = never stop
    ada_target: float = 0.0  # ADA: target of E[sign(D(real))]; 0 = augment always (no ADA)
    loss: str = "bce"  # DCGAN's loss: "bce" (the logistic GAN loss) or "hinge" (SN-GAN's)
    d_lr: float | None = None  # the discriminator's learning rate (None: lr; two time scales)
    beta1: float | None = None  # Adam's beta1 (None: 0.5 for DCGAN, 0.0 for WGAN-GP)
    beta2: float | None = None  # Adam's beta2 (None: 0.999 for DCGAN, 0.9 for WGAN-GP)
    #: the generator's batch-norm statistics at evaluation and at the end: "running" (what
    #: training left; with ``ema``, the trained generator's, copied) or "standing" (recomputed
    #: for the weights in use from seeded latent batches, as BigGAN's "standing statistics")
    bn_stats: str = "running"

    def __post_init__(self) -> None:
        if self.kind not in GAN_KINDS:
            raise ValueError(f"unknown gan {self.kind!r}; known: {', '.join(GAN_KINDS)}")
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; known: {', '.join(PRIORS)}")
        for name in ("latent_dim", "width", "epochs", "batch_size", "n_critic"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        parse_policy(self.augment)
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.eval_every < 0 or self.patience < 0:
            raise ValueError("eval_every and patience must be >= 0")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be in (0, 1), got {self.holdout}")
        if not 0.0 <= self.ada_target < 1.0:
            raise ValueError(f"ada_target must be in [0, 1), got {self.ada_target}")
        if self.ada_target > 0 and self.kind != "dcgan":
            raise ValueError("ada_target needs gan = \"dcgan\" (its heuristic reads the sign "
                             "of a logistic discriminator's logits)")
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"unknown gan loss {self.loss!r}; known: {', '.join(GAN_LOSSES)}")
        if self.loss != "bce" and self.kind != "dcgan":
            raise ValueError(f"loss = {self.loss!r} needs gan = \"dcgan\" (WGAN-GP has its "
                             "own critic loss)")
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"unknown bn_stats {self.bn_stats!r}; known: {', '.join(BN_STATS)}")
        if self.d_lr is not None and self.d_lr <= 0:
            raise ValueError(f"d_lr must be positive, got {self.d_lr}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.ada_target > 0 and not parse_policy(self.augment):
            raise ValueError("ada_target needs augment ops to apply (e.g. augment = "
                             "\"translation,cutout\")")

    def to_dict(self) -> dict[str, Any]:
        """The settings; the data-efficient ones only when they differ from their defaults,
        so the cache keys of generators trained before they existed stay valid."""
        full = asdict(self)
        for name, default in _NEW_DEFAULTS.items():
            if full[name] == default:
                del full[name]
        return full


_NEW_DEFAULTS: dict[str, Any] = {"augment": "", "spectral_norm": False, "ema": 0.0,
                                 "eval_every": 0, "holdout": 0.1, "patience": 0,
                                 "ada_target": 0.0, "loss": "bce", "d_lr": None,
                                 "beta1": None, "beta2": None, "bn_stats": "running"}


@dataclass(frozen=True)
class TrainReport:
    """What a training run measured."""

    seconds: float
    images_seen: int
    images_per_second: float
    final_d_loss: float
    final_g_loss: float
    device: str
    #: one ``{"epoch", "frechet"}`` per quality evaluation (empty without ``eval_every``)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    chosen_epoch: int | None = None  # the epoch of the kept checkpoint (None: the last)
    frechet_floor: float | None = None  # pool-training part vs holdout, real vs real
    #: ADA's augmentation probability at the end of training (None without ADA)
    ada_p: float | None = None
    #: the floor with the generated side's sample size: ``n_samples`` real pool-training images
    #: (mean over a few seeded draws) vs holdout; FD's bias grows as a sample shrinks, so this
    #: is what a generator that samples the pool's own distribution would score
    frechet_floor_matched: float | None = None


def build_networks(image_shape: tuple[int, int, int], settings: GeneratorSettings
                   ) -> tuple[Generator, Discriminator]:
    gen = Generator(image_shape, settings.latent_dim, settings.prior, settings.width)  # type: ignore[arg-type]
    norm = "none" if settings.kind == "wgan-gp" or settings.spectral_norm else "batch"
    disc = Discriminator(image_shape, settings.width, norm=norm)
    if settings.spectral_norm:
        from torch.nn.utils.parametrizations import spectral_norm

        for name, module in list(disc.named_modules()):
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                parent = disc.get_submodule(name.rsplit(".", 1)[0]) if "." in name else disc
                setattr(parent, name.rsplit(".", 1)[-1], spectral_norm(module))
    return gen, disc


QualityFn = Callable[[Generator, int], float]


def frechet_quality(holdout: np.ndarray, reference: np.ndarray, n_samples: int = 500,
                    seed: int = 0) -> tuple[QualityFn, float]:
    """A quality function (Fréchet distance of ``n_samples`` generated images to ``holdout``
    in a PCA-32 space fitted on ``reference``, smaller is better) and its real-vs-real floor
    (``reference`` vs ``holdout``)."""
    from activegen.generative.quality import frechet_distance, pca_features

    features = pca_features(reference)
    target = features(holdout)
    floor = frechet_distance(target, features(reference))

    def quality(gen: Generator, _epoch: int) -> float:
        images = gen.sample(n_samples, torch.Generator().manual_seed(seed)).cpu().numpy()
        return frechet_distance(target, features(images))

    return quality, floor


def matched_frechet_floor(holdout: np.ndarray, reference: np.ndarray, n_samples: int = 500,
                          draws: int = 5, seed: int = 0) -> float:
    """The real-vs-real floor at the generated side's sample size: the mean, over ``draws``
    seeded draws of ``n_samples`` images of ``reference``, of their Fréchet distance to
    ``holdout`` in the PCA-32 space of ``reference`` (the space :func:`frechet_quality` uses).

    :func:`frechet_quality`'s floor compares all of ``reference`` with ``holdout``; the
    generated side has only ``n_samples`` images, and the Fréchet distance's estimation bias
    grows as a sample shrinks, so a perfect generator would score this floor, not that one."""
    from activegen.generative.quality import frechet_distance, pca_features

    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if not 2 <= n_samples <= len(reference):
        raise ValueError(f"n_samples must be in [2, {len(reference)}] (the reference images), "
                         f"got {n_samples}")
    features = pca_features(reference)
    target = features(holdout)
    rng = np.random.default_rng(seed)
    values = [frechet_distance(target, features(reference[rng.choice(len(reference), n_samples,
                                                                     replace=False)]))
              for _ in range(draws)]
    return float(np.mean(values))


def _init_weights(module: torch.nn.Module) -> None:
    """DCGAN's N(0, 0.02) initialisation of convolutions and N(1, 0.02) of batch-norm scales."""
    if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
        torch.nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    elif isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        torch.nn.init.normal_(module.weight, 1.0, 0.02)
        torch.nn.init.zeros_(module.bias)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """SN-GAN's hinge loss of the discriminator: ``E[relu(1 − D(x))] + E[relu(1 + D(G(z)))]``."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def _gradient_penalty(critic: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                      gen: torch.Generator) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(real.device)
    mixed = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def train_generator(
    X: np.ndarray,
    settings: GeneratorSettings,
    device: str = "cpu",
    progress: bool = False,
    sample_path: Path | None = None,
    quality_fn: QualityFn | None = None,
    on_evaluation: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Generator, TrainReport]:
    """:func:`train_gan` without the discriminator."""
    gen, _disc, report = train_gan(X, settings, device, progress, sample_path, quality_fn,
                                   on_evaluation)
    return gen, report


def train_gan(
    X: np.ndarray,
    settings: GeneratorSettings,
    device: str = "cpu",
    progress: bool = False,
    sample_path: Path | None = None,
    quality_fn: QualityFn | None = None,
    on_evaluation: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Generator, Discriminator, TrainReport]:
    """Train on pool images ``X`` (``float32 [N, C, H, W]`` in ``[0, 1]``; no labels).

    Deterministic on the CPU for a given ``settings.seed``. Saves a grid of 64 samples to
    ``sample_path`` (PNG) when given. With ``settings.eval_every``, ``quality_fn(generator,
    epoch)`` (smaller is better; default: :func:`frechet_quality` on a held-out part of ``X``)
    is measured every so many epochs and the best checkpoint returned (with the discriminator
    of that moment). Each evaluation's record (``epoch``, ``frechet`` and, with ADA, ``ada_p``:
    the augmentation probability at that moment) is passed to ``on_evaluation`` when given (a
    progress hook; an exception it raises ends the training there). Returns the generator and
    the discriminator in eval mode and what was measured.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 4 or len(X) < 2:
        raise ValueError(f"train_generator needs images [N>=2, C, H, W], got shape {X.shape}")
    if X.min() < 0.0 or X.max() > 1.0:
        raise ValueError("train_generator needs images in [0, 1] (Dataset.to_float())")
    floor: float | None = None
    floor_matched: float | None = None
    if settings.eval_every and quality_fn is None:
        order = np.random.default_rng(settings.seed).permutation(len(X))
        n_hold = max(2, round(settings.holdout * len(X)))
        if len(X) - n_hold < 2:
            raise ValueError(f"a pool of {len(X)} images is too small to hold out "
                             f"{settings.holdout:.0%} for the quality evaluation")
        hold, X = X[order[:n_hold]], X[order[n_hold:]]
        quality_fn, floor = frechet_quality(hold, X, seed=settings.seed)
        floor_matched = matched_frechet_floor(hold, X, n_samples=min(500, len(X)),
                                              seed=settings.seed)
    ops = parse_policy(settings.augment)
    torch.manual_seed(settings.seed)
    rng = torch.Generator().manual_seed(settings.seed)
    aug_rng = torch.Generator().manual_seed(settings.seed + 7919)

    ada = AdaptiveAugment(settings.ada_target) if settings.ada_target > 0 else None

    def aug(x: torch.Tensor) -> torch.Tensor:
        if not ops:
            return x
        if ada is None:
            return diff_augment(x, ops, aug_rng)
        return ada.apply(x, ops, aug_rng)
    gen, disc = build_networks(tuple(X.shape[1:]), settings)  # type: ignore[arg-type]
    gen.apply(_init_weights)
    disc.apply(_init_weights)
    gen.to(device)
    disc.to(device)
    ema_gen = copy.deepcopy(gen).eval() if settings.ema > 0 else None
    evaluations: list[dict[str, float]] = []
    g_steps = 0
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
    real_all = torch.from_numpy(X).to(device) * 2.0 - 1.0  # the tanh scale of G.raw
    wgan = settings.kind == "wgan-gp"
    default_betas = (0.0, 0.9) if wgan else (0.5, 0.999)
    betas = (settings.beta1 if settings.beta1 is not None else default_betas[0],
             settings.beta2 if settings.beta2 is not None else default_betas[1])
    hinge = settings.loss == "hinge"
    opt_g = torch.optim.Adam(gen.parameters(), lr=settings.lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.d_lr or settings.lr, betas=betas)
    n = len(real_all)
    batch = min(settings.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    d_loss = g_loss = torch.zeros(())
    seen = 0
    t0 = time.perf_counter()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"training {settings.kind} on {n} images", total=settings.epochs)
        for epoch in range(1, settings.epochs + 1):
            order = torch.randperm(n, generator=rng).to(device)
            for step in range(steps_per_epoch):
                real = real_all[order[step * batch:(step + 1) * batch]]
                z = gen.sample_latent(len(real), rng, device)
                fake = gen.raw(z)
                real_d, fake_d = aug(real), aug(fake.detach())
                if wgan:
                    d_loss = (disc(fake_d).mean() - disc(real_d).mean()
                              + settings.gp_weight * _gradient_penalty(disc, real_d, fake_d,
                                                                       rng))
                elif hinge:
                    real_logits = disc(real_d)
                    d_loss = hinge_d_loss(real_logits, disc(fake_d))
                    if ada is not None:
                        ada.observe(real_logits.detach())
                else:
                    real_logits = disc(real_d)
                    d_loss = (F.binary_cross_entropy_with_logits(real_logits,
                              torch.ones(len(real), device=device))
                              + F.binary_cross_entropy_with_logits(disc(fake_d),
                              torch.zeros(len(real), device=device)))
                    if ada is not None:
                        ada.observe(real_logits.detach())
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                seen += len(real)
                if wgan and step % settings.n_critic != settings.n_critic - 1:
                    continue
                logits = disc(aug(fake))
                g_loss = (-logits.mean() if wgan or hinge else
                          F.binary_cross_entropy_with_logits(
                              logits, torch.ones(len(real), device=device)))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                if ema_gen is not None:
                    g_steps += 1
                    _ema_update(ema_gen, gen, min(settings.ema, (1 + g_steps) / (10 + g_steps)))
            bar.advance(task)
            if quality_fn is not None and settings.eval_every and (
                    epoch % settings.eval_every == 0 or epoch == settings.epochs):
                current = ema_gen if ema_gen is not None else gen
                if settings.bn_stats == "standing":  # a copy: training's own stats go on
                    current = standing_statistics(copy.deepcopy(current), batch,
                                                  settings.seed)
                value = float(quality_fn(current, epoch))
                current.train(current is gen)
                evaluations.append({"epoch": epoch, "frechet": value})
                if ada is not None:
                    evaluations[-1]["ada_p"] = ada.p
                if on_evaluation is not None:
                    on_evaluation(dict(evaluations[-1]))
                if best is None or value < best[0]:
                    best = (value, epoch, copy.deepcopy(current.state_dict()),
                            copy.deepcopy(disc.state_dict()))
                elif settings.patience and epoch - best[1] >= settings.patience * \
                        settings.eval_every:
                    break
    seconds = time.perf_counter() - t0
    if ema_gen is not None:
        gen = ema_gen
    chosen_epoch: int | None = None
    if best is not None:
        gen.load_state_dict(best[2])  # standing statistics included, when they were set
        disc.load_state_dict(best[3])
        chosen_epoch = best[1]
    elif settings.bn_stats == "standing":
        standing_statistics(gen, batch, settings.seed)
    gen.eval()
    disc.eval()
    if sample_path is not None:
        from activegen.generative.grid import save_image_grid

        images = gen.sample(64, torch.Generator().manual_seed(settings.seed + 1)).cpu().numpy()
        save_image_grid(images, sample_path)
    report = TrainReport(seconds, seen, seen / max(seconds, 1e-9), float(d_loss.detach()),
                         float(g_loss.detach()),
                         device, evaluations, chosen_epoch, floor,
                         ada.p if ada is not None else None, floor_matched)
    return gen, disc, report


@torch.no_grad()
def standing_statistics(gen: Generator, batch: int, seed: int,
                        n_batches: int = STANDING_BATCHES) -> Generator:
    """Recompute ``gen``'s batch-norm running statistics for its current weights: the plain
    average over ``n_batches`` seeded latent batches of ``batch`` (train mode, no gradient).

    An EMA generator otherwise uses the statistics of the trained generator's activations,
    copied, which do not match the averaged weights; returns ``gen`` in eval mode."""
    norms = [m for m in gen.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    rng = torch.Generator().manual_seed(seed + 104_729)
    device = next(gen.parameters()).device
    gen.train()
    for _ in range(n_batches):
        gen.raw(gen.sample_latent(batch, rng, device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return gen.eval()


@torch.no_grad()
def _ema_update(ema_gen: Generator, gen: Generator, decay: float) -> None:
    """``θ_ema ← decay·θ_ema + (1 − decay)·θ``; buffers (batch-norm statistics) copied.

    The caller warms the decay up (``min(ema, (1 + t) / (10 + t))`` at generator step ``t``),
    so that a short training does not leave the average dominated by the initial weights."""
    for p_ema, p in zip(ema_gen.parameters(), gen.parameters(), strict=True):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema_gen.buffers(), gen.buffers(), strict=True):
        b_ema.copy_(b)
