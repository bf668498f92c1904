"""The VAE paper's convolutional VAE, its training, and a cache of trained VAEs.

Architecture (Godwin et al. 2022, "Experiments"): an encoder of four strided (downsampling)
convolutions and two linear layers for the mean and log-variance; a decoder of one
upsampling (transposed, stride 4) convolution and four size-preserving convolutions. Kernel
sizes, widths and the latent size are not stated in the paper; ours are 3×3 convolutions of
``width·(1, 2, 4, 8)`` channels and ``latent_dim = 32`` by default (settings). Trained with
Adam (lr 1e-3, weight decay 5e-3) for 20 epochs on the whole dataset, as in the paper, with
the Bernoulli (binary cross-entropy) reconstruction term on ``[0, 1]`` pixels plus the KL
divergence to ``N(0, I)``.

The class-conditional VAE (trained with ``conditions``), the paper's proposed future work,
takes a class vector ``c`` (one-hot, or soft class probabilities) concatenated to the encoder's
flattened convolution output and to ``z`` in the decoder.

A trained VAE is cached under ``cache_dir`` keyed by a fingerprint of the images and of every
setting, so that one VAE serves every strategy and seed of an experiment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from activegen._cache import ArtifactCache, content_key, data_fingerprint
from activegen._settings import Settings
from activegen.errors import DataError
from activegen.generative.checked_state import load_state, state_bytes

#: Images per forward pass when encoding (bounds memory on big pools).
ENCODE_BATCH = 1024


class VAESettings(Settings):
    """Everything that decides a trained VAE (with the data, the seed and, for a
    class-conditional one, its conditions)."""

    latent_dim: int = Field(32, ge=1, description="size of the latent code (the features)")
    width: int = Field(32, ge=1, description="channels of the first conv (x1, 2, 4, 8)")
    epochs: int = Field(20, ge=1, description="training epochs (the paper's 20)")
    lr: float = Field(1e-3, gt=0, description="Adam's learning rate")
    weight_decay: float = Field(5e-3, ge=0, description="Adam's weight decay")
    batch_size: int = Field(128, ge=1, description="training batch size")


DEFAULT_VAE = VAESettings()


class ConvVAE(nn.Module):
    """Convolutional (optionally class-conditional) VAE for ``[C, H, W]`` images in [0, 1]."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], latent_dim: int = 32,
                 width: int = 32, n_conditions: int = 0) -> None:
        super().__init__()
        h, w = image_size
        if h < 4 or w < 4:
            raise ValueError(f"the VAE needs images of at least 4x4, got {h}x{w}")
        self.in_channels, self.image_size = in_channels, (h, w)
        self.latent_dim, self.n_conditions = latent_dim, n_conditions
        chans = (width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        previous = in_channels
        for c in chans:  # four downsampling convolutions
            layers += [nn.Conv2d(previous, c, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            previous = c
        self.encoder = nn.Sequential(*layers)
        eh, ew = h, w
        for _ in chans:
            eh, ew = (eh + 1) // 2, (ew + 1) // 2
        flat = chans[-1] * eh * ew
        self.fc_mu = nn.Linear(flat + n_conditions, latent_dim)
        self.fc_logvar = nn.Linear(flat + n_conditions, latent_dim)
        # Decoder: z → a map a quarter of the image size, one ×4 upsampling convolution, then
        # four size-preserving convolutions; the output is cropped to (H, W).
        self.dec_size = (math.ceil(h / 4), math.ceil(w / 4))
        self.dec_channels = 2 * width
        self.fc_dec = nn.Linear(latent_dim + n_conditions,
                                self.dec_channels * self.dec_size[0] * self.dec_size[1])
        self.upsample = nn.ConvTranspose2d(self.dec_channels, width, 4, stride=4)
        self.refine = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(width, in_channels, 3, padding=1),
        )

    def _condition(self, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.n_conditions == 0:
            if c is not None:
                raise ValueError("this VAE is not class-conditional; pass no condition")
            return h
        if c is None or c.shape != (h.shape[0], self.n_conditions):
            raise ValueError(f"this conditional VAE needs conditions [{h.shape[0]}, "
                             f"{self.n_conditions}]")
        return torch.cat([h, c.to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z | x[, c])``."""
        h = self._condition(torch.flatten(self.encoder(x), 1), c)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel logits ``[B, C, H, W]`` (apply a sigmoid for images)."""
        h = self.fc_dec(self._condition(z, c)).view(-1, self.dec_channels, *self.dec_size)
        out = self.refine(self.upsample(h))
        return out[:, :, : self.image_size[0], : self.image_size[1]]

    def loss(self, x: torch.Tensor, c: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean negative ELBO per image, and its reconstruction part."""
        mu, logvar = self.encode(x, c)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        recon = F.binary_cross_entropy_with_logits(self.decode_logits(z, c), x,
                                                   reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return recon + kl, recon


def _check_images(X: np.ndarray) -> None:
    if X.ndim != 4 or X.dtype != np.float32:
        raise DataError(f"the VAE takes float32 images [N, C, H, W], got {X.dtype} {X.shape}")
    if len(X) == 0:
        raise DataError("the VAE needs at least one image")


def train_vae(X: np.ndarray, settings: VAESettings = DEFAULT_VAE, seed: int = 0,
              device: str = "cpu", conditions: np.ndarray | None = None,
              on_epoch: Callable[[int, float], None] | None = None
              ) -> tuple[ConvVAE, list[float]]:
    """Train a VAE on ``X`` (``float32 [N, C, H, W]`` in [0, 1]); returns it and the mean
    loss of each epoch (``on_epoch(epoch, loss)`` after each, 1-based). Seeded: the same
    data, settings and seed give the same VAE on the CPU.
    """
    _check_images(X)
    if conditions is not None and (conditions.ndim != 2 or len(conditions) != len(X)):
        raise ValueError(f"conditions must be [{len(X)}, n_conditions], got {conditions.shape}")
    n_conditions = 0 if conditions is None else conditions.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConvVAE(X.shape[1], (X.shape[2], X.shape[3]), settings.latent_dim,
                        settings.width, n_conditions)
    dev = torch.device(device)
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr,
                                 weight_decay=settings.weight_decay)
    X_t = torch.from_numpy(np.ascontiguousarray(X))
    C_t = None if conditions is None else torch.from_numpy(conditions.astype(np.float32))
    order_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    history = []
    for _ in range(settings.epochs):
        order = torch.randperm(len(X_t), generator=order_gen)
        total, count = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            cb = None if C_t is None else C_t[idx].to(dev)
            loss, _ = model.loss(X_t[idx].to(dev), cb, noise_gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history.append(total / count)
        if on_epoch is not None:
            on_epoch(len(history), history[-1])
    model.eval()
    return model, history


def encode(model: ConvVAE, X: np.ndarray, conditions: np.ndarray | None = None) -> np.ndarray:
    """The posterior means ``mu(x)`` ``float32 [N, latent_dim]``: the VAE features ``V(x)``."""
    _check_images(X)
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(X), ENCODE_BATCH):
            xb = torch.from_numpy(np.ascontiguousarray(X[start:start + ENCODE_BATCH])).to(device)
            cb = None if conditions is None else torch.from_numpy(
                np.asarray(conditions[start:start + ENCODE_BATCH], dtype=np.float32)).to(device)
            out.append(model.encode(xb, cb)[0].float().cpu())
    return torch.cat(out).numpy()


#: Bump when the VAE's network, training or settings change (invalidates every cached VAE).
VAE_CACHE_VERSION = 2


def vae_cache_key(X: np.ndarray, settings: VAESettings, seed: int) -> str:
    """The key of the VAE trained on ``X`` with ``settings`` and ``seed``."""
    return content_key({"data": data_fingerprint(X), "seed": seed,
                        "settings": settings.model_dump(),
                        "version": VAE_CACHE_VERSION})


def _vae_cache(cache_dir: Path) -> ArtifactCache:
    # A damaged VAE is refused, naming the file, rather than silently retrained.
    return ArtifactCache(Path(cache_dir), "vaes", what="VAE", main_file="model.pt",
                         on_damaged="refuse")


def vae_cache_path(cache_dir: Path, X: np.ndarray, settings: VAESettings, seed: int) -> Path:
    """The state-dict file of the cached VAE for ``X``, ``settings`` and ``seed``."""
    return _vae_cache(cache_dir).entry(vae_cache_key(X, settings, seed)) / "model.pt"


def load_or_train_vae(X: np.ndarray, cache_dir: Path | None, settings: VAESettings = DEFAULT_VAE,
                      seed: int = 0, device: str = "cpu",
                      on_epoch: Callable[[int, float], None] | None = None) -> ConvVAE:
    """The unconditional VAE of ``X``: loaded from ``cache_dir`` if trained before, else
    trained and saved there (an entry of the one artifact cache, :mod:`activegen._cache`:
    one trainer at a time, written atomically, checked on load). ``cache_dir=None`` trains
    without caching."""
    if cache_dir is None:
        return train_vae(X, settings, seed, device, on_epoch=on_epoch)[0]

    def build(folder: Path) -> ConvVAE:
        model, _ = train_vae(X, settings, seed, device, on_epoch=on_epoch)
        (folder / "model.pt").write_bytes(state_bytes(model.state_dict()))
        return model

    def load(entry: Path) -> ConvVAE:
        model = ConvVAE(X.shape[1], (X.shape[2], X.shape[3]), settings.latent_dim,
                        settings.width)
        model.load_state_dict(load_state(entry / "model.pt", device))  # checks the SHA-256
        return model.to(device).eval()

    return _vae_cache(cache_dir).load_or_build(vae_cache_key(X, settings, seed), build, load)[0]
