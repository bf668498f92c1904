"""Train a generator on the unlabeled pool only (DCGAN loss or WGAN-GP), seeded, with progress.

WGAN-GP (Gulrajani et al. 2017) is the GAAL paper's "future work": a critic without batch
norm, ``n_critic`` critic steps per generator step, and a penalty ``λ(‖∇D(x̂)‖ − 1)²`` on
random interpolates of real and generated images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from activegen.generative.dcgan import PRIORS, Discriminator, Generator

GanKind = Literal["dcgan", "wgan-gp"]
GAN_KINDS: tuple[str, ...] = ("dcgan", "wgan-gp")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainReport:
    """What a training run measured."""

    seconds: float
    images_seen: int
    images_per_second: float
    final_d_loss: float
    final_g_loss: float
    device: str


def build_networks(image_shape: tuple[int, int, int], settings: GeneratorSettings
                   ) -> tuple[Generator, Discriminator]:
    gen = Generator(image_shape, settings.latent_dim, settings.prior, settings.width)  # type: ignore[arg-type]
    norm = "none" if settings.kind == "wgan-gp" else "batch"
    return gen, Discriminator(image_shape, settings.width, norm=norm)


def _init_weights(module: torch.nn.Module) -> None:
    """DCGAN's N(0, 0.02) initialisation of convolutions and N(1, 0.02) of batch-norm scales."""
    if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
        torch.nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    elif isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        torch.nn.init.normal_(module.weight, 1.0, 0.02)
        torch.nn.init.zeros_(module.bias)


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
) -> tuple[Generator, TrainReport]:
    """Train on pool images ``X`` (``float32 [N, C, H, W]`` in ``[0, 1]``; no labels).

    Deterministic on the CPU for a given ``settings.seed``. Saves a grid of 64 samples to
    ``sample_path`` (PNG) when given. Returns the generator in eval mode and what was measured.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 4 or len(X) < 2:
        raise ValueError(f"train_generator needs images [N>=2, C, H, W], got shape {X.shape}")
    if X.min() < 0.0 or X.max() > 1.0:
        raise ValueError("train_generator needs images in [0, 1] (Dataset.to_float())")
    torch.manual_seed(settings.seed)
    rng = torch.Generator().manual_seed(settings.seed)
    gen, disc = build_networks(tuple(X.shape[1:]), settings)  # type: ignore[arg-type]
    gen.apply(_init_weights)
    disc.apply(_init_weights)
    gen.to(device)
    disc.to(device)
    real_all = torch.from_numpy(X).to(device) * 2.0 - 1.0  # the tanh scale of G.raw
    wgan = settings.kind == "wgan-gp"
    betas = (0.0, 0.9) if wgan else (0.5, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=settings.lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=betas)
    n = len(real_all)
    batch = min(settings.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    d_loss = g_loss = torch.zeros(())
    seen = 0
    t0 = time.perf_counter()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"training {settings.kind} on {n} images", total=settings.epochs)
        for _epoch in range(settings.epochs):
            order = torch.randperm(n, generator=rng).to(device)
            for step in range(steps_per_epoch):
                real = real_all[order[step * batch:(step + 1) * batch]]
                z = gen.sample_latent(len(real), rng, device)
                fake = gen.raw(z)
                if wgan:
                    d_loss = (disc(fake.detach()).mean() - disc(real).mean()
                              + settings.gp_weight * _gradient_penalty(disc, real, fake.detach(),
                                                                       rng))
                else:
                    d_loss = (F.binary_cross_entropy_with_logits(disc(real), torch.ones(len(real),
                              device=device))
                              + F.binary_cross_entropy_with_logits(disc(fake.detach()),
                              torch.zeros(len(real), device=device)))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                seen += len(real)
                if wgan and step % settings.n_critic != settings.n_critic - 1:
                    continue
                logits = disc(fake)
                g_loss = (-logits.mean() if wgan else F.binary_cross_entropy_with_logits(
                    logits, torch.ones(len(real), device=device)))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
            bar.advance(task)
    seconds = time.perf_counter() - t0
    gen.eval()
    if sample_path is not None:
        from activegen.generative.grid import save_image_grid

        images = gen.sample(64, torch.Generator().manual_seed(settings.seed + 1)).cpu().numpy()
        save_image_grid(images, sample_path)
    report = TrainReport(seconds, seen, seen / max(seconds, 1e-9), float(d_loss.detach()),
                         float(g_loss.detach()),
                         device)
    return gen, report
