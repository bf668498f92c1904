"""Train a DCGAN on the pool's images only (no labels), seeded, with progress; in small parts.

The parts: :func:`build_networks` (the generator and discriminator, with spectral
normalisation on the discriminator when asked), :class:`AdversarialLoss` (the logistic GAN
loss, or SN-GAN's hinge loss), :class:`WeightAverage` (an exponential moving average of the
generator's weights, warmed up), :class:`BestCheckpoint` (the Fréchet distance of samples to a
held-out part of the pool every ``eval_every`` epochs; the best checkpoint is kept, training
stops after ``patience`` evaluations without gain) and :func:`standing_statistics`
(batch-norm statistics recomputed for the weights in use). :func:`train_gan` composes them.

The ``stable`` preset of :class:`GeneratorSettings` is the recipe measured best on the MNIST
pools (hinge loss, spectral norm, two time scales, Adam betas (0, 0.9), batch 16, EMA 0.999 with
standing statistics, the best checkpoint by held-out Fréchet distance; see ``docs/gaal.md``);
``paper`` is the plain DCGAN.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from activegen._settings import PresetSettings
from activegen.generative.dcgan import Discriminator, Generator

#: latent batches (of the training batch size) that set standing batch-norm statistics
STANDING_BATCHES = 32


class GeneratorSettings(PresetSettings):
    """Everything that decides a trained generator (with the pool and the seed; its cache key).

    Presets: ``paper`` (a plain DCGAN: the defaults) and ``stable`` (the measured recipe)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "stable": {"batch_size": 16, "lr": 1e-4, "d_lr": 4e-4, "beta1": 0.0, "beta2": 0.9,
                   "loss": "hinge", "spectral_norm": True, "ema": 0.999,
                   "bn_stats": "standing", "eval_every": 5, "holdout": 0.1},
    }

    epochs: int = Field(50, ge=1, description="passes over the pool")
    latent_dim: int = Field(100, ge=1, description="size of z ~ N(0, I)")
    width: int = Field(32, ge=1, description="channels of the last hidden layer")
    batch_size: int = Field(64, ge=1, description="training batch size")
    lr: float = Field(2e-4, gt=0, description="the generator's Adam learning rate")
    d_lr: float | None = Field(None, gt=0, description=(
        "the discriminator's learning rate (none: lr; two time scales otherwise)"))
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam's beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam's beta2")
    loss: Literal["bce", "hinge"] = Field("bce", description=(
        "bce: the logistic GAN loss; hinge: SN-GAN's"))
    spectral_norm: bool = Field(False, description=(
        "spectral normalisation on every discriminator layer (replacing its batch norm)"))
    ema: float = Field(0.0, ge=0, lt=1, description=(
        "decay of an average of the generator's weights, which is the generator kept (0: off)"))
    bn_stats: Literal["running", "standing"] = Field("running", description=(
        "the generator's batch-norm statistics: what training left, or recomputed for the "
        "weights in use"))
    eval_every: int = Field(0, ge=0, description=(
        "epochs between Fréchet evaluations on held-out pool images; the best checkpoint is "
        "kept (0: train every epoch, keep the last)"))
    holdout: float = Field(0.1, gt=0, lt=1, description="share of the pool held out for them")
    patience: int = Field(0, ge=0, description=(
        "evaluations without gain before stopping (0: never)"))


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
    #: the floor with the generated side's sample size: ``n_samples`` real pool-training images
    #: (mean over a few seeded draws) vs holdout; FD's bias grows as a sample shrinks, so this
    #: is what a generator that samples the pool's own distribution would score
    frechet_floor_matched: float | None = None


def build_networks(image_shape: tuple[int, int, int], settings: GeneratorSettings
                   ) -> tuple[Generator, Discriminator]:
    """The generator and the discriminator of ``settings``, for ``(C, H, W)`` images."""
    gen = Generator(image_shape, settings.latent_dim, settings.width)
    disc = Discriminator(image_shape, settings.width,
                         norm="none" if settings.spectral_norm else "batch")
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


class AdversarialLoss:
    """The discriminator's and the generator's losses: ``bce`` (the logistic GAN loss, with
    the non-saturating generator loss) or ``hinge`` (SN-GAN: ``D`` minimises
    ``relu(1 − D(x)) + relu(1 + D(G(z)))``, ``G`` maximises ``D(G(z))``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor
                      ) -> torch.Tensor:
        if self.kind == "hinge":
            return hinge_d_loss(real_logits, fake_logits)
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "hinge":
            return -fake_logits.mean()
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class WeightAverage:
    """An exponential moving average of the generator's weights (``decay`` warmed up as
    ``min(decay, (1 + t) / (10 + t))`` at generator step ``t``, so a short training is not
    dominated by the initial weights); buffers (batch-norm statistics) are copied."""

    def __init__(self, gen: Generator, decay: float) -> None:
        self.decay = decay
        self.average = copy.deepcopy(gen).eval()
        self.steps = 0

    @torch.no_grad()
    def update(self, gen: Generator) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for p_avg, p in zip(self.average.parameters(), gen.parameters(), strict=True):
            p_avg.lerp_(p, 1.0 - decay)
        for b_avg, b in zip(self.average.buffers(), gen.buffers(), strict=True):
            b_avg.copy_(b)


class BestCheckpoint:
    """Keeps the generator (and its discriminator) of the smallest quality value seen, and
    says when ``patience`` evaluations have passed without a better one."""

    def __init__(self, patience: int, eval_every: int) -> None:
        self.patience, self.eval_every = patience, eval_every
        self.value: float | None = None
        self.epoch: int | None = None
        self.states: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None

    def observe(self, value: float, epoch: int, gen: torch.nn.Module,
                disc: torch.nn.Module) -> bool:
        """Record an evaluation; True when training should stop (patience spent)."""
        if self.value is None or value < self.value:
            self.value, self.epoch = value, epoch
            self.states = (copy.deepcopy(gen.state_dict()), copy.deepcopy(disc.state_dict()))
            return False
        assert self.epoch is not None
        return bool(self.patience) and epoch - self.epoch >= self.patience * self.eval_every

    def restore(self, gen: torch.nn.Module, disc: torch.nn.Module) -> int | None:
        """Load the best states into ``gen`` and ``disc``; the epoch they are from."""
        if self.states is not None:
            gen.load_state_dict(self.states[0])  # standing statistics included, when set
            disc.load_state_dict(self.states[1])
        return self.epoch


def train_generator(X: np.ndarray, settings: GeneratorSettings, seed: int = 0,
                    device: str = "cpu", **options: Any) -> tuple[Generator, TrainReport]:
    """:func:`train_gan` without the discriminator."""
    gen, _disc, report = train_gan(X, settings, seed, device, **options)
    return gen, report


def train_gan(
    X: np.ndarray,
    settings: GeneratorSettings,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    sample_path: Path | None = None,
    quality_fn: QualityFn | None = None,
    on_evaluation: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Generator, Discriminator, TrainReport]:
    """Train on pool images ``X`` (``float32 [N, C, H, W]`` in ``[0, 1]``; no labels).

    Deterministic on the CPU for a given ``seed``. Saves a grid of 64 samples to
    ``sample_path`` (PNG) when given. With ``settings.eval_every``, ``quality_fn(generator,
    epoch)`` (smaller is better; default: :func:`frechet_quality` on a held-out part of ``X``)
    is measured every so many epochs and the best checkpoint returned (with the discriminator
    of that moment). Each evaluation's record (``epoch``, ``frechet``) is passed to
    ``on_evaluation`` when given (a progress hook; an exception it raises ends the training
    there). Returns the generator and the discriminator in eval mode and what was measured.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 4 or len(X) < 2:
        raise ValueError(f"train_generator needs images [N>=2, C, H, W], got shape {X.shape}")
    if X.min() < 0.0 or X.max() > 1.0:
        raise ValueError("train_generator needs images in [0, 1] (Dataset.to_float())")
    floor: float | None = None
    floor_matched: float | None = None
    if settings.eval_every and quality_fn is None:
        order = np.random.default_rng(seed).permutation(len(X))
        n_hold = max(2, round(settings.holdout * len(X)))
        if len(X) - n_hold < 2:
            raise ValueError(f"a pool of {len(X)} images is too small to hold out "
                             f"{settings.holdout:.0%} for the quality evaluation")
        hold, X = X[order[:n_hold]], X[order[n_hold:]]
        quality_fn, floor = frechet_quality(hold, X, seed=seed)
        floor_matched = matched_frechet_floor(hold, X, n_samples=min(500, len(X)), seed=seed)
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    gen, disc = build_networks(tuple(X.shape[1:]), settings)  # type: ignore[arg-type]
    gen.apply(_init_weights)
    disc.apply(_init_weights)
    gen.to(device)
    disc.to(device)
    average = WeightAverage(gen, settings.ema) if settings.ema > 0 else None
    adversarial = AdversarialLoss(settings.loss)
    best = BestCheckpoint(settings.patience, settings.eval_every)
    evaluations: list[dict[str, float]] = []
    real_all = torch.from_numpy(X).to(device) * 2.0 - 1.0  # the tanh scale of G.raw
    betas = (settings.beta1, settings.beta2)
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
        task = bar.add_task(f"training a generator on {n} images", total=settings.epochs)
        for epoch in range(1, settings.epochs + 1):
            order = torch.randperm(n, generator=rng).to(device)
            for step in range(steps_per_epoch):
                real = real_all[order[step * batch:(step + 1) * batch]]
                fake = gen.raw(gen.sample_latent(len(real), rng, device))
                d_loss = adversarial.discriminator(disc(real), disc(fake.detach()))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                seen += len(real)
                g_loss = adversarial.generator(disc(fake))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                if average is not None:
                    average.update(gen)
            bar.advance(task)
            if quality_fn is not None and settings.eval_every and (
                    epoch % settings.eval_every == 0 or epoch == settings.epochs):
                current = average.average if average is not None else gen
                if settings.bn_stats == "standing":  # a copy: training's own stats go on
                    current = standing_statistics(copy.deepcopy(current), batch, seed)
                value = float(quality_fn(current, epoch))
                current.train(current is gen)
                evaluations.append({"epoch": epoch, "frechet": value})
                if on_evaluation is not None:
                    on_evaluation(dict(evaluations[-1]))
                if best.observe(value, epoch, current, disc):
                    break
    seconds = time.perf_counter() - t0
    if average is not None:
        gen = average.average
    chosen_epoch = best.restore(gen, disc)
    if chosen_epoch is None and settings.bn_stats == "standing":
        standing_statistics(gen, batch, seed)
    gen.eval()
    disc.eval()
    if sample_path is not None:
        from activegen.generative.grid import save_image_grid

        images = gen.sample(64, torch.Generator().manual_seed(seed + 1)).cpu().numpy()
        save_image_grid(images, sample_path)
    report = TrainReport(seconds, seen, seen / max(seconds, 1e-9), float(d_loss.detach()),
                         float(g_loss.detach()), device, evaluations, chosen_epoch, floor,
                         floor_matched)
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
